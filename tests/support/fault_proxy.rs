//! A TCP proxy on 127.0.0.1 that forwards to a real server and cuts the connection in the middle
//! of a query's response, to inject an I/O error at a chosen point.
//!
//! The proxy watches the client's packets; once it has seen a COM_QUERY, it forwards
//! `cut_after` more bytes of the server's answer and then closes both sides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Proxies one connection to `upstream`, cutting it `cut_after` bytes into the first query's
    /// response.
    pub async fn cut_mid_response(upstream: SocketAddr, cut_after: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else { return };
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let query_sent = Arc::new(AtomicBool::new(false));
            let seen = query_sent.clone();
            let upstream_task = tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n) = client_rx.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    // byte 4 is the command of a packet that starts this chunk; 0x03 = COM_QUERY
                    if n > 4 && buf[4] == 0x03 {
                        seen.store(true, Ordering::SeqCst);
                    }
                    if server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let mut budget = cut_after;
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = server_rx.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut send = n;
                if query_sent.load(Ordering::SeqCst) {
                    send = n.min(budget);
                    budget -= send;
                }
                if client_tx.write_all(&buf[..send]).await.is_err()
                    || (query_sent.load(Ordering::SeqCst) && budget == 0)
                {
                    break;
                }
            }
            upstream_task.abort();
            // Dropping both halves of each socket closes them: the client sees end of stream.
        });
        FaultProxy { addr, task }
    }
}
