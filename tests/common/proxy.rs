//! A TCP proxy on loopback that a test can cut, stall or restore, to put an
//! outage between a connection pool and a real server; or that keeps the
//! PostgreSQL server's notifications from its clients, as a transaction-mode
//! pooler does to a `LISTEN`.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow both ways.
    Up,
    /// Every connection is closed, new ones are closed on accept.
    Down,
    /// Connections are accepted and then never answered.
    Stalled,
    /// Open connections go silent but stay open, as over a network path
    /// that died without a word; new ones pass.
    Frozen,
    /// Bytes flow both ways, but no notification (PostgreSQL's
    /// `NotificationResponse`) from the server reaches a client: `LISTEN`
    /// is accepted and hears nothing. Back to `Up`, open connections hear
    /// again.
    Deaf,
}

pub struct Proxy {
    pub addr: SocketAddr,
    link: Arc<watch::Sender<Link>>,
    dropped: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, _) = watch::channel(Link::Up);
        let link = Arc::new(link);
        let dropped = Arc::new(AtomicUsize::new(0));
        let (accept_link, accept_dropped) = (link.clone(), dropped.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let changes = accept_link.subscribe();
                tokio::spawn(serve(client, upstream, changes, accept_dropped.clone()));
            }
        });
        Self {
            addr,
            link,
            dropped,
        }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    /// How many notifications were kept from clients so far.
    pub fn notifications_dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut changes: watch::Receiver<Link>,
    dropped: Arc<AtomicUsize>,
) {
    let state = *changes.borrow_and_update();
    match state {
        Link::Down => {}
        Link::Stalled => {
            // Hold the socket silently until the link changes.
            let _ = changes.changed().await;
        }
        Link::Up | Link::Frozen | Link::Deaf => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (_, _) = (client.set_nodelay(true), server.set_nodelay(true));
            let link = changes.clone();
            tokio::select! {
                _ = forward(&mut client, &mut server, link, &dropped) => {}
                _ = async {
                    while changes.changed().await.is_ok() {
                        if !matches!(*changes.borrow(), Link::Up | Link::Deaf) {
                            break;
                        }
                    }
                } => {}
            }
            if *changes.borrow() == Link::Frozen {
                // Hold both sockets, forwarding nothing, until the link changes.
                let _ = changes.changed().await;
            }
        }
    }
}

/// `SSLRequest` and `GSSENCRequest`: a client asking to encrypt.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
/// A startup packet longer than this is not PostgreSQL's.
const MAX_STARTUP: usize = 10_000;

/// Forwards one PostgreSQL connection until either side closes it. The
/// proxy refuses encryption itself (`N`, as a server without TLS does), so
/// that what follows is plain and the server's messages can be told apart.
async fn forward(
    client: &mut TcpStream,
    server: &mut TcpStream,
    link: watch::Receiver<Link>,
    dropped: &AtomicUsize,
) -> io::Result<()> {
    loop {
        let mut head = [0; 8];
        client.read_exact(&mut head).await?;
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if length == 8 && matches!(code, SSL_REQUEST | GSSENC_REQUEST) {
            client.write_all(b"N").await?;
            continue;
        }
        if !(8..=MAX_STARTUP).contains(&length) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a startup packet",
            ));
        }
        // The startup message (or a cancel request): passed on whole.
        let mut packet = head.to_vec();
        packet.resize(length, 0);
        client.read_exact(&mut packet[8..]).await?;
        server.write_all(&packet).await?;
        break;
    }
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    tokio::select! {
        result = tokio::io::copy(&mut client_read, &mut server_write) => result.map(drop),
        result = messages(&mut server_read, &mut client_write, link, dropped) => result,
    }
}

/// Passes the server's messages on (a type byte, then a big-endian length
/// counting itself and the body), but for notifications (`A`) while the
/// link is [`Link::Deaf`].
async fn messages(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    link: watch::Receiver<Link>,
    dropped: &AtomicUsize,
) -> io::Result<()> {
    let mut pending = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..read]);
        let mut passed = Vec::with_capacity(pending.len());
        let mut at = 0;
        while let Some(head) = pending.get(at..at + 5) {
            let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if length < 4 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad message length",
                ));
            }
            let end = at + 1 + length;
            if pending.len() < end {
                break;
            }
            if head[0] == b'A' && *link.borrow() == Link::Deaf {
                dropped.fetch_add(1, Ordering::SeqCst);
            } else {
                passed.extend_from_slice(&pending[at..end]);
            }
            at = end;
        }
        pending.drain(..at);
        if !passed.is_empty() {
            to.write_all(&passed).await?;
        }
    }
}
