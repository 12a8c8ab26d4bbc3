// probe is the launcher integration tests' helper: it performs one
// filesystem or network operation and reports the outcome on stdout as
// "ok ..." (exit 0) or "errno=N ..." (exit 1), so that tests can assert the
// exact errno the kernel returns inside a landgate sandbox.
//
// It is written in Go on purpose: Go >= 1.24 listens with MPTCP by default,
// which is the hole the launcher's seccomp filter closes. The uring-*
// commands drive io_uring on raw syscalls (uring.go), the way past that
// filter which the launcher closes by refusing io_uring.
//
// Usage:
//
//	probe listen ADDR     net.Listen("tcp", ADDR) with Go's defaults (MPTCP),
//	                      then serve one connection from itself
//	probe bind ADDR       plain TCP bind+listen (MPTCP off); prints the port
//	probe connect ADDR    plain TCP connect
//	probe mptcp-socket    socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)
//	probe fastopen ADDR sendto|sendmsg|sendmmsg
//	                      send "hi" with MSG_FASTOPEN on a fresh TCP socket
//	                      (a connect that bypasses Landlock's connect hook)
//	probe listen-unbound  listen() on a TCP socket never bound: the kernel
//	                      picks an ephemeral port; prints it
//	probe uring-setup     io_uring_setup: is io_uring available at all
//	probe uring-mptcp-bind ADDR
//	                      IORING_OP_SOCKET(IPPROTO_MPTCP), then plain
//	                      bind+listen on ADDR; prints the port
//	probe uring-fastopen ADDR
//	                      IORING_OP_SENDMSG with MSG_FASTOPEN on a fresh TCP
//	                      socket
//	probe uring-inherited FD
//	                      io_uring_enter and io_uring_register on a ring
//	                      inherited as FD
//	probe write PATH      create/truncate PATH and write to it
//	probe read PATH       read PATH
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

const (
	ipprotoMPTCP = 262
	soProtocol   = 38         // SO_PROTOCOL, from asm-generic/socket.h
	msgFastopen  = 0x20000000 // MSG_FASTOPEN, from linux/socket.h
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
	case "fastopen":
		need(4)
		err = fastopen(os.Args[2], os.Args[3])
	case "listen-unbound":
		err = listenUnbound()
	case "uring-setup":
		err = uringSetup()
	case "uring-mptcp-bind":
		need(3)
		err = uringMptcpBind(os.Args[2])
	case "uring-fastopen":
		need(3)
		err = uringFastopen(os.Args[2])
	case "uring-inherited":
		need(3)
		var fd int
		fd, err = strconv.Atoi(os.Args[2])
		if err == nil {
			err = uringInherited(fd)
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
	fmt.Fprintln(os.Stderr, "usage: probe listen|bind|connect ADDR | mptcp-socket | fastopen ADDR sendto|sendmsg|sendmmsg | listen-unbound | uring-setup | uring-mptcp-bind|uring-fastopen ADDR | uring-inherited FD | write|read PATH")
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

// fastopen sends with MSG_FASTOPEN on a fresh, unbound, unconnected TCP
// socket through the named syscall. With net.ipv4.tcp_fastopen's client bit
// set, the kernel connects as part of the send.
func fastopen(addr, call string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Errorf("fastopen needs an IPv4 ADDR:PORT, got %q", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	data := []byte("hi")
	switch call {
	case "sendto":
		err = syscall.Sendto(fd, data, msgFastopen, to)
	case "sendmsg":
		_, err = syscall.SendmsgN(fd, data, nil, to, msgFastopen)
	case "sendmmsg":
		err = sendmmsg(fd, data, ap)
	default:
		usage()
	}
	if err != nil {
		return err
	}
	fmt.Printf("ok sent with MSG_FASTOPEN via %s\n", call)
	return nil
}

// mmsghdr is struct mmsghdr from linux/socket.h.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// sendmmsg is sendmmsg(2) with one message; the syscall package has neither
// the call nor its number.
func sendmmsg(fd int, data []byte, ap netip.AddrPort) error {
	name := syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ap.Addr().As4()}
	port := ap.Port()
	p := (*[2]byte)(unsafe.Pointer(&name.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	iov := syscall.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	var msg mmsghdr
	msg.hdr.Name = (*byte)(unsafe.Pointer(&name))
	msg.hdr.Namelen = uint32(unsafe.Sizeof(name))
	msg.hdr.Iov = &iov
	msg.hdr.Iovlen = 1
	var nr uintptr
	switch runtime.GOARCH {
	case "amd64":
		nr = 307
	case "arm64":
		nr = 269
	default:
		return fmt.Errorf("sendmmsg: no syscall number for %s", runtime.GOARCH)
	}
	n, _, errno := syscall.Syscall6(nr, uintptr(fd),
		uintptr(unsafe.Pointer(&msg)), 1, msgFastopen, 0, 0)
	if errno != 0 {
		return errno
	}
	if n != 1 {
		return fmt.Errorf("sendmmsg sent %d messages", n)
	}
	return nil
}

// listenUnbound calls listen() on a TCP socket that was never bound: the
// kernel binds it to an ephemeral port itself, without the LSM bind hook.
func listenUnbound() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Listen(fd, 1); err != nil {
		return err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("ok listening port=%d\n", sa.(*syscall.SockaddrInet4).Port)
	return nil
}
