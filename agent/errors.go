package agent

import "errors"

// ErrClosed is returned by Start, Reload and Close after Close.
var ErrClosed = errors.New("agent: closed")

// StartupError marks an error after which restarting cannot help (bad
// configuration, missing model, locked or corrupt store, wrong key): edged
// run exits with status 3 on one, which systemd does not restart. Find it
// with errors.As.
type StartupError struct{ Err error }

func (e StartupError) Error() string { return e.Err.Error() }
func (e StartupError) Unwrap() error { return e.Err }

// startup marks err (nil stays nil) as a StartupError.
func startup(err error) error {
	if err == nil {
		return nil
	}
	return StartupError{err}
}
