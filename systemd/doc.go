// Package systemd holds edged's systemd unit, its example configuration and
// environment files and the install script (install.sh, run by `make
// install`). It has no code; its tests verify the unit with systemd-analyze
// and run the install script into a staging directory.
package systemd
