use std::net::TcpListener;
use std::path::{Path, PathBuf};
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
    /// Starts a server on a port the server itself takes from the OS (`-p -1`),
    /// read back from its ports file, so no other process can take it in between.
    pub async fn start() -> Self {
        let store = crate::temp_dir();
        let child = spawn(&store.path().join("js"), "-1", Some(store.path()));
        let port = crate::wait::until_some(
            Duration::from_secs(10),
            "private nats-server writes its ports file",
            || async { read_ports_file(store.path()) },
        )
        .await;
        let nats = Self {
            port,
            store,
            child: Some(child),
        };
        nats.wait_until_it_answers().await;
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
        self.child = Some(spawn(&store, &self.port.to_string(), None));
        self.wait_until_it_answers().await;
    }

    async fn wait_until_it_answers(&self) {
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

fn spawn(store: &Path, port: &str, ports_file_dir: Option<&Path>) -> Child {
    let mut cmd = Command::new("nats-server");
    cmd.args(["-js", "-a", "127.0.0.1", "-p", port, "-sd"])
        .arg(store);
    if let Some(dir) = ports_file_dir {
        cmd.arg("--ports_file_dir").arg(dir);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tests that restart NATS need nats-server on PATH")
}

/// The client port in `<dir>/nats-server_<pid>.ports` (`{"nats": ["nats://host:port"]}`).
fn read_ports_file(dir: &Path) -> Option<u16> {
    let file = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
    let ports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file.path()).ok()?).ok()?;
    ports["nats"][0].as_str()?.rsplit(':').next()?.parse().ok()
}

/// A port the OS just handed out; free again once the listener is dropped.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}
