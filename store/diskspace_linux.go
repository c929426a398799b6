//go:build linux

package store

import "syscall"

// statFree returns the file system's blocks available to unprivileged
// users (f_bavail: root's reserve is not counted) times its block size.
func statFree(path string) (uint64, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}
