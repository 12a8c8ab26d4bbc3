package main

// A minimal io_uring client on raw syscalls (no liburing, no cgo): one
// submission, one completion at a time, which is all the probe needs to show
// what io_uring can do past a seccomp filter that only sees syscalls.
//
// Layouts are from linux/io_uring.h (identical on amd64 and arm64): struct
// io_uring_params is 120 bytes with sq_off at 40 and cq_off at 80; an SQE is
// 64 bytes, a CQE 16.

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	sysIoUringSetup    = 425 // the same number on every architecture
	sysIoUringEnter    = 426
	sysIoUringRegister = 427

	ioringOffSqRing = 0
	ioringOffSqes   = 0x10000000

	ioringFeatSingleMmap = 1 << 0
	ioringEnterGetevents = 1 << 0
	ioringRegisterProbe  = 8

	ioringOpSendmsg = 9
	ioringOpSocket  = 45
)

// ioUringParams is struct io_uring_params.
type ioUringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  ringOffsets
	cqOff                                                                  ringOffsets
}

// ringOffsets is io_sqring_offsets and io_cqring_offsets alike: the field at
// index 5 is `cqes` for the completion ring and `flags` for the submission
// ring, index 6 is `array` for the submission ring.
type ringOffsets struct {
	head, tail, ringMask, ringEntries, f4, f5, f6, resv1 uint32
	userAddr                                             uint64
}

// sqe is struct io_uring_sqe, with the union members the probe uses.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags for sendmsg, rw_flags for socket
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   uint32
	addr3       uint64
	pad         uint64
}

type uring struct {
	fd      int
	sqRing  []byte
	sqes    []byte
	sqTail  *uint32
	sqMask  uint32
	sqArray unsafe.Pointer
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
}

// newRing is io_uring_setup plus the two mmaps. The ring's fd is opened
// O_CLOEXEC by the kernel.
func newRing() (*uring, error) {
	var p ioUringParams
	fd, _, errno := syscall.Syscall(sysIoUringSetup, 4, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &uring{fd: int(fd)}
	if p.features&ioringFeatSingleMmap == 0 {
		r.close()
		return nil, errors.New("io_uring without IORING_FEAT_SINGLE_MMAP (Linux < 5.4)")
	}
	sqLen := int(p.sqOff.f6) + int(p.sqEntries)*4
	cqLen := int(p.cqOff.f5) + int(p.cqEntries)*16
	ringLen := max(sqLen, cqLen)
	var err error
	r.sqRing, err = syscall.Mmap(r.fd, ioringOffSqRing, ringLen,
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.sqes, err = syscall.Mmap(r.fd, ioringOffSqes, int(p.sqEntries)*64,
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	at := func(off uint32) unsafe.Pointer { return unsafe.Pointer(&r.sqRing[off]) }
	r.sqTail = (*uint32)(at(p.sqOff.tail))
	r.sqMask = *(*uint32)(at(p.sqOff.ringMask))
	r.sqArray = at(p.sqOff.f6)
	r.cqHead = (*uint32)(at(p.cqOff.head))
	r.cqTail = (*uint32)(at(p.cqOff.tail))
	r.cqMask = *(*uint32)(at(p.cqOff.ringMask))
	r.cqes = at(p.cqOff.f5)
	return r, nil
}

func (r *uring) close() {
	if r.sqes != nil {
		syscall.Munmap(r.sqes)
	}
	if r.sqRing != nil {
		syscall.Munmap(r.sqRing)
	}
	syscall.Close(r.fd)
}

// run submits one SQE, waits for its completion and returns the CQE's res:
// a negative errno on failure, as the kernel reports it.
func (r *uring) run(e sqe) (int32, error) {
	tail := atomic.LoadUint32(r.sqTail)
	index := tail & r.sqMask
	*(*sqe)(unsafe.Pointer(&r.sqes[index*64])) = e
	*(*uint32)(unsafe.Add(r.sqArray, index*4)) = index
	atomic.StoreUint32(r.sqTail, tail+1)
	_, _, errno := syscall.Syscall6(sysIoUringEnter, uintptr(r.fd), 1, 1, ioringEnterGetevents, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("io_uring_enter: %w", errno)
	}
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return 0, errors.New("io_uring_enter returned without a completion")
	}
	res := *(*int32)(unsafe.Add(r.cqes, (head&r.cqMask)*16+8))
	atomic.StoreUint32(r.cqHead, head+1)
	return res, nil
}

// uringSetup only creates a ring: whether io_uring is available at all.
func uringSetup() error {
	r, err := newRing()
	if err != nil {
		return err
	}
	r.close()
	fmt.Println("ok io_uring ring created")
	return nil
}

// uringMptcpBind creates an MPTCP socket with IORING_OP_SOCKET, which no
// seccomp filter on socket() sees, then binds and listens with plain
// syscalls: Landlock's TCP bind rules do not cover MPTCP sockets.
func uringMptcpBind(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Errorf("uring-mptcp-bind needs an IPv4 ADDR:PORT, got %q", addr)
	}
	r, err := newRing()
	if err != nil {
		return err
	}
	defer r.close()
	res, err := r.run(sqe{
		opcode: ioringOpSocket,
		fd:     syscall.AF_INET, // domain
		off:    syscall.SOCK_STREAM,
		len:    ipprotoMPTCP,
	})
	if err != nil {
		return err
	}
	if res < 0 {
		return fmt.Errorf("IORING_OP_SOCKET(IPPROTO_MPTCP): %w", syscall.Errno(-res))
	}
	fd := int(res)
	defer syscall.Close(fd)
	proto, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, soProtocol)
	if err != nil {
		return err
	}
	if proto != ipprotoMPTCP {
		return fmt.Errorf("IORING_OP_SOCKET made a protocol-%d socket, not MPTCP", proto)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := syscall.Listen(fd, 1); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("ok io_uring mptcp socket bound port=%d\n", sa.(*syscall.SockaddrInet4).Port)
	return nil
}

// uringFastopen sends "hi" with MSG_FASTOPEN through IORING_OP_SENDMSG on a
// fresh, unconnected TCP socket: the send connects, and no seccomp filter on
// sendmsg() sees it. io_uring issues the send non-blocking first, so the
// kernel answers EINPROGRESS while the handshake it started completes.
func uringFastopen(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Errorf("uring-fastopen needs an IPv4 ADDR:PORT, got %q", addr)
	}
	r, err := newRing()
	if err != nil {
		return err
	}
	defer r.close()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	name := syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ap.Addr().As4()}
	port := ap.Port()
	p := (*[2]byte)(unsafe.Pointer(&name.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	data := []byte("hi")
	iov := syscall.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	var msg syscall.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(&name))
	msg.Namelen = uint32(unsafe.Sizeof(name))
	msg.Iov = &iov
	msg.Iovlen = 1
	res, err := r.run(sqe{
		opcode:  ioringOpSendmsg,
		fd:      int32(fd),
		addr:    uint64(uintptr(unsafe.Pointer(&msg))),
		len:     1,
		opFlags: msgFastopen,
	})
	runtime.KeepAlive(&msg)
	runtime.KeepAlive(&name)
	runtime.KeepAlive(data)
	if err != nil {
		return err
	}
	if res < 0 && syscall.Errno(-res) != syscall.EINPROGRESS {
		return fmt.Errorf("IORING_OP_SENDMSG(MSG_FASTOPEN): %w", syscall.Errno(-res))
	}
	// Give the handshake time to reach the listener before the socket closes.
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("ok sent with MSG_FASTOPEN via io_uring res=%d\n", res)
	return nil
}

// uringInherited drives a ring the probe did not create (FD inherited from
// its parent) with io_uring_enter and io_uring_register only: no setup.
func uringInherited(fd int) error {
	_, _, errno := syscall.Syscall6(sysIoUringEnter, uintptr(fd), 0, 0, 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring_enter on inherited fd %d: %w", fd, errno)
	}
	var probe [16 + 256*8]byte // struct io_uring_probe with 256 ops
	_, _, errno = syscall.Syscall6(sysIoUringRegister, uintptr(fd), ioringRegisterProbe,
		uintptr(unsafe.Pointer(&probe[0])), 256, 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring_register on inherited fd %d: %w", fd, errno)
	}
	fmt.Printf("ok io_uring_enter and io_uring_register on inherited fd %d\n", fd)
	return nil
}
