use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `nats-server` of this test's own (binary from `PATH`) with JetStream in a
/// temp directory, for tests that stop and restart NATS. Killed when dropped.
pub struct PrivateNats {
    pub port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    pub async fn start() -> Self {
        let port = free_port();
        let mut nats = Self {
            port,
            store: crate::temp_dir(),
            child: None,
        };
        nats.restart().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would); the store stays for a restart.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let store: PathBuf = self.store.path().join("js");
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tests that restart NATS need nats-server on PATH");
        self.child = Some(child);
        let url = self.url();
        crate::wait::until(
            Duration::from_secs(10),
            "private nats-server answers",
            || {
                let url = url.clone();
                async move {
                    // A raw request: async-nats 0.51 cannot parse 2.9's typed account info.
                    match async_nats::connect(&url).await {
                        Ok(c) => c.request("$JS.API.INFO", "".into()).await.is_ok(),
                        Err(_) => false,
                    }
                }
            },
        )
        .await;
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port the OS just handed out; free again once the listener is dropped.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}
