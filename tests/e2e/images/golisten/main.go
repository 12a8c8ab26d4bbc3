// golisten binds each port given on the command line (a Go listener: MPTCP
// by default since Go 1.24), prints one line per port, tries io_uring_setup,
// then serves "golisten\n" over HTTP on the ports it got and waits. Its lines
// go to stderr, the launcher's stream, so that the log keeps their order
// (containerd timestamps stdout and stderr separately as it reads them).
//
//	listen :8080 ok mptcp=true
//	listen :9090 error: listen tcp :9090: bind: permission denied (errno 13)
//	io_uring_setup error: operation not permitted (errno 1)
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	var listeners []net.Listener
	for _, port := range os.Args[1:] {
		var lc net.ListenConfig
		l, err := lc.Listen(context.Background(), "tcp", ":"+port)
		if err != nil {
			fmt.Fprintf(os.Stderr, "listen :%s error: %v%s\n", port, err, errno(err))
			continue
		}
		fmt.Fprintf(os.Stderr, "listen :%s ok mptcp=%v\n", port, lc.MultipathTCP())
		listeners = append(listeners, l)
	}
	ioURing()
	if len(listeners) == 0 {
		select {}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "golisten")
	})
	for _, l := range listeners[1:] {
		go http.Serve(l, handler)
	}
	http.Serve(listeners[0], handler)
}

// ioURing reports whether io_uring_setup(2) works: with TCP restricted the
// launcher denies it, since io_uring could bind and connect around Landlock.
func ioURing() {
	var params [120]byte
	const sysIoUringSetup = 425
	fd, _, e := syscall.Syscall(sysIoUringSetup, 4, uintptr(unsafe.Pointer(&params[0])), 0)
	if e != 0 {
		fmt.Fprintf(os.Stderr, "io_uring_setup error: %v (errno %d)\n", e, int(e))
		return
	}
	syscall.Close(int(fd))
	fmt.Fprintln(os.Stderr, "io_uring_setup ok")
}

func errno(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return fmt.Sprintf(" (errno %d)", int(e))
	}
	return ""
}
