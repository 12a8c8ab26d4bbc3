// probe is the launcher integration tests' helper: it performs one
// filesystem or network operation and reports the outcome on stdout as
// "ok ..." (exit 0) or "errno=N ..." (exit 1), so that tests can assert the
// exact errno the kernel returns inside a landgate sandbox.
//
// It is written in Go on purpose: Go >= 1.24 listens with MPTCP by default,
// which is the hole the launcher's seccomp filter closes.
//
// Usage:
//
//	probe listen ADDR     net.Listen("tcp", ADDR) with Go's defaults (MPTCP),
//	                      then serve one connection from itself
//	probe bind ADDR       plain TCP bind+listen (MPTCP off); prints the port
//	probe connect ADDR    plain TCP connect
//	probe mptcp-socket    socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)
//	probe write PATH      create/truncate PATH and write to it
//	probe read PATH       read PATH
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

const (
	ipprotoMPTCP = 262
	soProtocol   = 38 // SO_PROTOCOL, from asm-generic/socket.h
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "listen":
		need(3)
		err = listen(os.Args[2])
	case "bind":
		need(3)
		err = bind(os.Args[2])
	case "connect":
		need(3)
		var c net.Conn
		c, err = net.Dial("tcp", os.Args[2])
		if err == nil {
			c.Close()
			fmt.Println("ok connected")
		}
	case "mptcp-socket":
		var fd int
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, ipprotoMPTCP)
		if err == nil {
			syscall.Close(fd)
			fmt.Println("ok mptcp socket created")
		}
	case "write":
		need(3)
		err = os.WriteFile(os.Args[2], []byte("probe\n"), 0o644)
		if err == nil {
			fmt.Println("ok written")
		}
	case "read":
		need(3)
		_, err = os.ReadFile(os.Args[2])
		if err == nil {
			fmt.Println("ok read")
		}
	default:
		usage()
	}
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			fmt.Printf("errno=%d %v\n", int(errno), err)
			os.Exit(1)
		}
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
}

func need(n int) {
	if len(os.Args) < n {
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: probe listen|bind|connect ADDR | mptcp-socket | write|read PATH")
	os.Exit(64)
}

// listen uses Go's default listener configuration, which asks for MPTCP
// since Go 1.24, then proves the listener serves by dialing itself.
func listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	proto, err := listenerProtocol(ln)
	if err != nil {
		return err
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("hello\n"))
		accepted <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	greeting, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if err := <-accepted; err != nil {
		return err
	}
	fmt.Printf("ok served %q listener=%s\n", string(greeting), proto)
	return nil
}

// listenerProtocol says whether the listening socket is MPTCP or plain TCP.
func listenerProtocol(ln net.Listener) (string, error) {
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return "", err
	}
	var proto int
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		proto, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, soProtocol)
	}); err != nil {
		return "", err
	}
	if sockErr != nil {
		return "", sockErr
	}
	switch proto {
	case ipprotoMPTCP:
		return "mptcp", nil
	case syscall.IPPROTO_TCP:
		return "tcp", nil
	default:
		return fmt.Sprintf("protocol-%d", proto), nil
	}
}

// bind listens with MPTCP explicitly off: a plain TCP socket, which is what
// Landlock's TCP rules cover.
func bind(addr string) error {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("ok bound port=%d\n", ln.Addr().(*net.TCPAddr).Port)
	return nil
}
