//! SIEM sinks against real receivers on 127.0.0.1: a JSON-lines file,
//! syslog over UDP, TCP and TLS, and an HTTP webhook; receivers that are down
//! and come back get everything, in order.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use vestibule_audit::AuditHandle;
use vestibule_audit::sinks::{SinkConfig, SinkSet, SinkStats};

fn sink(toml_text: &str) -> SinkConfig {
    toml::from_str(toml_text).unwrap()
}

async fn append(handle: &AuditHandle, range: std::ops::Range<u64>) {
    for i in range {
        handle.append(common::event(i)).await.unwrap();
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn stats(sinks: &SinkSet) -> SinkStats {
    sinks.stats().remove(0)
}

/// A port nothing listens on (bound, then released).
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Check one RFC 5424 message and return its JSON.
fn parse_syslog(message: &str) -> Value {
    let rest = message.strip_prefix('<').expect("PRI");
    let (pri, rest) = rest.split_once('>').unwrap();
    let pri: u16 = pri.parse().unwrap();
    assert_eq!(pri / 8, 10, "authpriv");
    let mut fields = rest.splitn(7, ' ');
    assert_eq!(fields.next(), Some("1"), "VERSION");
    let timestamp = fields.next().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.contains('T'),
        "{timestamp}"
    );
    assert_eq!(fields.next(), Some("bastion"), "HOSTNAME");
    assert_eq!(fields.next(), Some("vestibule"), "APP-NAME");
    assert!(fields.next().unwrap().parse::<u32>().is_ok(), "PROCID");
    let msgid = fields.next().unwrap().to_owned();
    let rest = fields.next().unwrap();
    let (sd, msg) = rest.split_once("] ").unwrap();
    let json: Value = serde_json::from_str(msg).unwrap();
    assert_eq!(json["event"]["action"], msgid.as_str());
    assert_eq!(
        sd,
        format!("[meta sequenceId=\"{}\"", json["event"]["sequence"])
    );
    assert_eq!(json["@timestamp"], timestamp);
    assert_eq!(
        pri % 8,
        if msgid == "authentication.failure" {
            4
        } else {
            6
        }
    );
    json
}

fn sequences(documents: &[Value]) -> Vec<u64> {
    documents
        .iter()
        .map(|d| d["event"]["sequence"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn file_sink_rotates_and_keeps_order() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let out = root.path().join("export/audit.jsonl");
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    let config = sink(&format!(
        "name = \"archive\"\nkind = \"file\"\npath = \"{}\"\nmax_bytes = 3000\nkeep = 10\nbatch_size = 3",
        out.display()
    ));
    let sinks = SinkSet::spawn(&dir, &[config], handle.head())
        .await
        .unwrap();
    append(&handle, 0..20).await;
    wait_for("the file sink", || stats(&sinks).cursor == 20).await;
    assert_eq!(stats(&sinks).backlog, 0);
    assert_eq!(
        std::fs::read_to_string(dir.join("sinks/archive.cursor")).unwrap(),
        "20\n"
    );
    let mut documents = Vec::new();
    for n in (1..=10).rev() {
        let rotated = out.with_extension(format!("jsonl.{n}"));
        if rotated.exists() {
            documents.extend(read_jsonl(&rotated));
        }
    }
    documents.extend(read_jsonl(&out));
    assert!(out.with_extension("jsonl.1").exists(), "rotated");
    assert_eq!(sequences(&documents), (1..=20).collect::<Vec<_>>());
    assert!(documents[0]["event"]["hash"].as_str().unwrap().len() == 64);
    sinks.shutdown(Duration::from_secs(5)).await;
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn syslog_over_udp_sends_rfc5424() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    let config = sink(&format!(
        "name = \"udp\"\nkind = \"syslog\"\ntransport = \"udp\"\naddress = \"{}\"\nhostname = \"bastion\"",
        receiver.local_addr().unwrap()
    ));
    let sinks = SinkSet::spawn(&dir, &[config], handle.head())
        .await
        .unwrap();
    append(&handle, 0..5).await;
    let mut documents = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..5 {
        let n = tokio::time::timeout(Duration::from_secs(10), receiver.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        documents.push(parse_syslog(std::str::from_utf8(&buf[..n]).unwrap()));
    }
    assert_eq!(sequences(&documents), [1, 2, 3, 4, 5]);
    sinks.shutdown(Duration::from_secs(5)).await;
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
}

/// Read octet-counted frames (RFC 6587) until `count` have arrived.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(reader: R, count: usize) -> Vec<Value> {
    let mut reader = BufReader::new(reader);
    let mut documents = Vec::new();
    while documents.len() < count {
        let mut length = Vec::new();
        reader.read_until(b' ', &mut length).await.unwrap();
        let length: usize = std::str::from_utf8(&length[..length.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        let mut message = vec![0u8; length];
        reader.read_exact(&mut message).await.unwrap();
        documents.push(parse_syslog(std::str::from_utf8(&message).unwrap()));
    }
    documents
}

#[tokio::test]
async fn syslog_over_tcp_catches_up_after_the_receiver_was_down() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let port = free_port().await;
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    let config = sink(&format!(
        "name = \"tcp\"\nkind = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nhostname = \"bastion\"\nmax_backoff = \"200ms\""
    ));
    let sinks = SinkSet::spawn(&dir, &[config], handle.head())
        .await
        .unwrap();
    append(&handle, 0..30).await;
    wait_for("a failed delivery", || stats(&sinks).failures > 0).await;
    let down = stats(&sinks);
    assert_eq!((down.cursor, down.backlog), (0, 30));
    assert!(down.last_error.unwrap().contains("syslog 127.0.0.1"));

    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    append(&handle, 30..40).await;
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let documents = tokio::time::timeout(Duration::from_secs(10), read_frames(stream, 40))
        .await
        .unwrap();
    assert_eq!(sequences(&documents), (1..=40).collect::<Vec<_>>());
    wait_for("the cursor", || stats(&sinks).cursor == 40).await;
    assert_eq!(stats(&sinks).last_error, None);
    sinks.shutdown(Duration::from_secs(5)).await;
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn syslog_over_tls_verifies_the_receiver() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_file = root.path().join("ca.pem");
    std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    let config = sink(&format!(
        "name = \"tls\"\nkind = \"syslog\"\ntransport = \"tls\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nca_file = \"{}\"\nhostname = \"bastion\"",
        ca_file.display()
    ));
    let sinks = SinkSet::spawn(&dir, &[config], handle.head())
        .await
        .unwrap();
    append(&handle, 0..6).await;
    let (tcp, _) = listener.accept().await.unwrap();
    let stream = acceptor.accept(tcp).await.unwrap();
    let documents = tokio::time::timeout(Duration::from_secs(10), read_frames(stream, 6))
        .await
        .unwrap();
    assert_eq!(sequences(&documents), [1, 2, 3, 4, 5, 6]);
    sinks.shutdown(Duration::from_secs(5)).await;
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_tls_sink_refuses_an_unknown_certificate() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let served = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_file = root.path().join("ca.pem");
    std::fs::write(&ca_file, other.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![served.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(served.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    let config = sink(&format!(
        "name = \"tls\"\nkind = \"syslog\"\ntransport = \"tls\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nca_file = \"{}\"",
        ca_file.display()
    ));
    let sinks = SinkSet::spawn(&dir, &[config], handle.head())
        .await
        .unwrap();
    append(&handle, 0..2).await;
    wait_for("a refused handshake", || stats(&sinks).failures > 0).await;
    let error = stats(&sinks).last_error.unwrap();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(stats(&sinks).cursor, 0);
    sinks.shutdown(Duration::from_secs(1)).await;
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
}

mod webhook {
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::*;

    /// (Authorization header, body) of each accepted request.
    type Bodies = Arc<Mutex<Vec<(Option<String>, String)>>>;

    #[derive(Clone, Default)]
    struct Received {
        bodies: Bodies,
        /// Answer 500 to this many requests first.
        fail_first: Arc<Mutex<u32>>,
    }

    async fn ingest(State(state): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
        {
            let mut fail = state.fail_first.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
        }
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        state.bodies.lock().unwrap().push((auth, body));
        StatusCode::OK
    }

    async fn serve(listener: TcpListener, state: Received) {
        let app = Router::new()
            .route("/ingest", post(ingest))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    fn documents(state: &Received) -> Vec<Value> {
        let bodies = state.bodies.lock().unwrap();
        let mut all = Vec::new();
        for (_, body) in bodies.iter() {
            if body.starts_with('[') {
                let batch: Vec<Value> = serde_json::from_str(body).unwrap();
                all.extend(batch);
            } else {
                all.extend(
                    body.lines()
                        .map(|l| serde_json::from_str::<Value>(l).unwrap()),
                );
            }
        }
        all
    }

    #[tokio::test]
    async fn a_webhook_down_then_up_receives_everything_in_order() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        let port = free_port().await;
        let (handle, task, _) = common::start(&dir, common::options(1000)).await;
        let config = sink(&format!(
            "name = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/ingest\"\nauthorization = \"Bearer t0ken\"\nbatch_size = 7\nbatch_interval = \"100ms\"\nmax_backoff = \"200ms\""
        ));
        let sinks = SinkSet::spawn(&dir, &[config], handle.head())
            .await
            .unwrap();
        append(&handle, 0..25).await;
        wait_for("failed deliveries", || stats(&sinks).failures >= 2).await;
        assert_eq!(stats(&sinks).backlog, 25);

        let state = Received::default();
        *state.fail_first.lock().unwrap() = 1;
        serve(
            TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
            state.clone(),
        )
        .await;
        append(&handle, 25..40).await;
        wait_for("delivery", || stats(&sinks).cursor == 40).await;
        let received = documents(&state);
        assert_eq!(
            sequences(&received),
            (1..=40).collect::<Vec<_>>(),
            "no loss, in order"
        );
        let bodies = state.bodies.lock().unwrap().clone();
        assert!(
            bodies
                .iter()
                .all(|(auth, _)| auth.as_deref() == Some("Bearer t0ken"))
        );
        assert!(bodies.len() >= 6, "batches of at most 7: {}", bodies.len());
        assert_eq!(stats(&sinks).backlog, 0);
        sinks.shutdown(Duration::from_secs(5)).await;
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_restarted_sink_resumes_at_its_cursor() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Received::default();
        serve(listener, state.clone()).await;
        let config = sink(&format!(
            "name = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/ingest\"\nformat = \"ndjson\"\nbatch_interval = \"0s\""
        ));

        let (handle, task, _) = common::start(&dir, common::options(1000)).await;
        let sinks = SinkSet::spawn(&dir, std::slice::from_ref(&config), handle.head())
            .await
            .unwrap();
        append(&handle, 0..5).await;
        wait_for("delivery", || stats(&sinks).cursor == 5).await;
        sinks.shutdown(Duration::from_secs(5)).await;
        append(&handle, 5..9).await;
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();

        // Gateway restarts: the sink picks up from its cursor file.
        let (handle, task, _) = common::start(&dir, common::options(1000)).await;
        let sinks = SinkSet::spawn(&dir, &[config], handle.head())
            .await
            .unwrap();
        wait_for("catch-up", || stats(&sinks).cursor == 9).await;
        assert_eq!(
            sequences(&documents(&state)),
            (1..=9).collect::<Vec<_>>(),
            "each event once"
        );
        sinks.shutdown(Duration::from_secs(5)).await;
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    }
}
