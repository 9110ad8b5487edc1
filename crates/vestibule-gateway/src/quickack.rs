//! The gateway's TCP connections (from people, to targets): no Nagle delay on
//! what the gateway sends, and no delayed acknowledgement of what it reads.
//!
//! OpenSSH writes with Nagle's algorithm on until a session turns interactive
//! (the `ssh` client always does for `ssh host command`, and sshd until the
//! channel is set up), so a small packet written while an earlier one is not
//! yet acknowledged waits for that acknowledgement. Linux holds back an ACK
//! for up to 40 ms when the receiver has nothing to send, which is just what
//! a gateway does while it thinks. tcpdump on loopback showed it on both
//! legs: the client's key-exchange packet waited 41 ms behind its KEXINIT
//! (in two of three connections), and sshd's reply to the exec request
//! waited 41 ms on the target leg (in every one). Setting `TCP_QUICKACK` after a read sends the pending ACK at once
//! (the kernel clears the flag again on its own, hence after each read).
//!
//! Only a connection's first reads do it: they carry the handshake,
//! authentication and the channel's set-up (and, for `-J`, the inner
//! connection's handshake), where each side waits for the other. Later, a
//! lone ACK per read is one more packet on an interactive session's round
//! trip, which A/B runs of the benchmark priced at tens of microseconds, and
//! the replies carry the ACKs anyway.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Reads acknowledged at once. A whole `ssh host true` took 24 to 39 reads
/// on either leg, `-J` included.
const QUICK_READS: u32 = 64;

/// A [`TcpStream`] that acknowledges its first reads at once.
#[derive(Debug)]
pub(crate) struct QuickAckStream {
    inner: TcpStream,
    quick_reads_left: u32,
}

impl QuickAckStream {
    pub(crate) fn new(stream: TcpStream) -> QuickAckStream {
        // Either may fail only on a socket that is already dead; the
        // connection then fails on its own first read or write.
        let _ = stream.set_nodelay(true);
        acknowledge_now(&stream);
        QuickAckStream {
            inner: stream,
            quick_reads_left: QUICK_READS,
        }
    }
}

#[cfg(target_os = "linux")]
fn acknowledge_now(stream: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(stream, true);
}

#[cfg(not(target_os = "linux"))]
fn acknowledge_now(_stream: &TcpStream) {}

impl AsyncRead for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.quick_reads_left > 0
            && matches!(polled, Poll::Ready(Ok(())))
            && buf.filled().len() > before
        {
            self.quick_reads_left -= 1;
            acknowledge_now(&self.inner);
        }
        polled
    }
}

impl AsyncWrite for QuickAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::QuickAckStream;

    /// Whether the socket would acknowledge at once (false: the kernel is in
    /// its interactive "pingpong" mode and delays ACKs).
    fn acks_at_once(stream: &QuickAckStream) -> bool {
        rustix::net::sockopt::tcp_quickack(&stream.inner).unwrap_or(false)
    }

    async fn pair() -> (QuickAckStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (QuickAckStream::new(accepted), peer)
    }

    /// Request and reply a few times, as a handshake does: a receiver that
    /// answers at once is taken by the kernel to be interactive, and from
    /// then on delays its ACKs.
    async fn converse(ours: &mut QuickAckStream, peer: &mut TcpStream) {
        let mut buf = [0u8; 4];
        for _ in 0..5 {
            peer.write_all(b"ping").await.unwrap();
            ours.inner.read_exact(&mut buf).await.unwrap();
            ours.write_all(b"pong").await.unwrap();
            peer.read_exact(&mut buf).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_read_during_set_up_is_acknowledged_at_once() {
        let (mut ours, mut peer) = pair().await;
        converse(&mut ours, &mut peer).await;
        // Without this check the test could pass on a kernel that never
        // delays ACKs.
        assert!(!acks_at_once(&ours), "the kernel delays ACKs after replies");

        peer.write_all(b"more").await.unwrap();
        let mut buf = [0u8; 4];
        ours.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"more");
        assert!(
            acks_at_once(&ours),
            "a read through the stream ACKs at once"
        );
    }

    #[tokio::test]
    async fn reads_after_set_up_leave_acks_to_the_kernel() {
        let (mut ours, mut peer) = pair().await;
        ours.quick_reads_left = 0;
        converse(&mut ours, &mut peer).await;

        peer.write_all(b"more").await.unwrap();
        let mut buf = [0u8; 4];
        ours.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"more");
        assert!(!acks_at_once(&ours), "past set-up, ACKs are delayed again");
    }
}
