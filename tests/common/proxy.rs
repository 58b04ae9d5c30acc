//! A TCP proxy on loopback that a test can cut, stall or restore, to put an
//! outage between a connection pool and a real server.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::copy_bidirectional,
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
}

pub struct Proxy {
    pub addr: SocketAddr,
    link: Arc<watch::Sender<Link>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, _) = watch::channel(Link::Up);
        let link = Arc::new(link);
        let accept_link = link.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let changes = accept_link.subscribe();
                tokio::spawn(serve(client, upstream, changes));
            }
        });
        Self { addr, link }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mut changes: watch::Receiver<Link>) {
    let state = *changes.borrow_and_update();
    match state {
        Link::Down => {}
        Link::Stalled => {
            // Hold the socket silently until the link changes.
            let _ = changes.changed().await;
        }
        Link::Up | Link::Frozen => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut server) => {}
                _ = async {
                    while changes.changed().await.is_ok() {
                        if *changes.borrow() != Link::Up {
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
