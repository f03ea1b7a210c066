//! A keep-alive HTTP/1.1 client just big enough to time GETs against `leashed serve`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl KeepAlive {
    pub fn connect(addr: &str) -> std::io::Result<KeepAlive> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive { reader: BufReader::new(stream.try_clone()?), writer: stream, host: addr.to_string() })
    }

    /// `GET path`: the status and the body.
    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        write!(self.writer, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host)?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}
