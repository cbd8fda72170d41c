//! A real HTTP receiver on 127.0.0.1 for notification tests: it records every request and
//! answers as the test says (a status code, a redirect, a hang, a slow answer, a reset
//! connection), and it can be taken down and brought back on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Status(u16),
    /// 301 to this Location.
    Redirect(String),
    /// Never answers (until the connection is dropped).
    Hang,
    /// Answers 200 after this long.
    Slow(Duration),
    /// Reads the request, writes the start of a status line and resets the connection
    /// (TCP RST), as a crashing proxy would.
    Reset,
    /// 503 to every Nth request (counting all requests), 200 to the others: a receiver
    /// that fails now and then.
    FailEvery(usize),
    /// This status with a body quoting the request's path and `Authorization` header, as
    /// a web framework's error page may (`Cannot POST /path`).
    Echo(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the receiver answered with.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    answer: Mutex<Option<Answer>>,
    received: Mutex<Vec<Received>>,
    /// Requests handled so far, for [`Answer::FailEvery`].
    handled: std::sync::atomic::AtomicUsize,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free loopback port, answering 200.
    pub async fn start() -> Receiver {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        *shared.answer.lock().unwrap() = Some(Answer::Status(200));
        let mut receiver = Receiver {
            addr,
            shared,
            server: None,
        };
        receiver.serve(listener);
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// `http://127.0.0.1:PORT`, for tests that choose their own path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Stops listening: connections are refused until [`Receiver::up`].
    pub async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = bind(self.addr);
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&self.shared));
        let listener = ResettingListener {
            inner: listener,
            shared: Arc::clone(&self.shared),
        };
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.bind(addr).expect("bind the receiver's port");
    socket.listen(64).expect("listen")
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = shared
        .answer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(Answer::Status(200));
    let status = match &answer {
        Answer::Status(code) | Answer::Echo(code) => *code,
        Answer::Redirect(_) => 301,
        Answer::Hang | Answer::Reset => 0,
        Answer::Slow(_) => 200,
        Answer::FailEvery(n) => {
            let count = shared
                .handled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            if count % (*n).max(1) == 0 { 503 } else { 200 }
        }
    };
    let echo = format!(
        "Cannot POST {}{} (Authorization: {})",
        uri.path(),
        uri.query()
            .map(|query| format!("?{query}"))
            .unwrap_or_default(),
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none"),
    );
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers,
        body,
        answered: status,
    });
    match answer {
        Answer::Echo(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            echo,
        )
            .into_response(),
        Answer::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Answer::Redirect(location) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
        Answer::FailEvery(_) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        // Handled by `ResettingListener` before axum sees the connection.
        Answer::Reset => StatusCode::OK.into_response(),
    }
}

/// Hands connections to axum, except while the answer is [`Answer::Reset`]: then it
/// resets them itself, since a handler cannot reach its socket.
struct ResettingListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for ResettingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else {
                // Out of file descriptors, say: wait a little as axum's own listener does.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let resetting = *self.shared.answer.lock().unwrap() == Some(Answer::Reset);
            if !resetting {
                return (stream, addr);
            }
            tokio::spawn(reset(stream, Arc::clone(&self.shared)));
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Reads one request, records it, writes half a status line and closes with SO_LINGER 0,
/// so the client sees a reset mid-response.
async fn reset(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some((head, body)) = read_request(&mut stream).await else {
        return;
    };
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    shared.received.lock().unwrap().push(Received {
        path,
        headers: HeaderMap::new(),
        body: Bytes::from(body),
        answered: 0,
    });
    let _ = stream.write_all(b"HTTP/1.1 200").await;
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Reads one HTTP/1.1 request from a raw connection: its head (request line and headers)
/// and its `Content-Length` body. `None` when the connection ends first.
pub async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).into_owned();
            let length: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return Some((head, request[end + 4..end + 4 + length].to_vec()));
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
}
