//! Stand-ins for slack-counter and for one AWS API call: a local HTTP server that answers one
//! request.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// A request the stand-in received.
pub struct Received {
    /// The request's path and query.
    pub path: String,
    pub content_type: String,
    /// Lowercase header names, with their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one POST to /slack: `answer` gives the status and JSON body.
pub fn serve_once(
    answer: impl FnOnce(&Received) -> (u16, String) + Send + 'static,
) -> (String, JoinHandle<()>) {
    let (base, handle) = serve_one(move |request| {
        assert_eq!(request.path, "/slack");
        let (status, body) = answer(request);
        (status, Vec::new(), body)
    });
    (format!("{base}/slack"), handle)
}

/// Serves one POST to any path, at the URL returned: `answer` gives the status, headers
/// beside Content-Type and Content-Length, and the JSON body.
pub fn serve_one(
    answer: impl FnOnce(&Received) -> (u16, Vec<(&'static str, String)>, String) + Send + 'static,
) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the smoke test connects");
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut headers = Vec::new();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let path = line
            .strip_prefix("POST ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("not a POST: {line}"))
            .to_owned();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let content_type = headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let (status, extra, reply) = answer(&Received {
            path,
            content_type,
            headers,
            body,
        });
        let extra: String = extra
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
    });
    (url, handle)
}
