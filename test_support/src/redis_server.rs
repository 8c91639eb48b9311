//! A throwaway `redis-server` on a free loopback port, for the Redis peers
//! of benches and every test that needs a real server: started with
//! persistence off, stopped by its pid (killed on drop), and, for the
//! failure tests, stopped, restarted on the same port, paused and resumed.
//! `None` (with a note on stderr) when `redis-server` is not on PATH,
//! except under `CI=true`, where that is a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    args: Vec<String>,
}

fn spawn(port: u16, args: &[String]) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// How many ports a start tries before it gives up.
const ATTEMPTS: usize = 5;

/// How a server just spawned came up.
enum Up {
    /// It answers.
    Ready,
    /// Its process exited (its port was taken meanwhile).
    Exited,
    /// Still silent after 10 s.
    Silent,
}

/// The URL of a server on the loopback `port`.
fn local_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// Whether the server on `port` answers: PONG, or (a server whose default
/// user is off) NOAUTH, at connection or at the PING. With `pid`, a server
/// that reports another process id (another test's server that took the
/// port first) does not count.
fn answers(port: u16, pid: Option<u32>) -> bool {
    let noauth = |e: &redis::RedisError| {
        e.code() == Some("NOAUTH")
            || e.kind() == redis::ErrorKind::AuthenticationFailed
            || e.to_string().contains("NOAUTH")
    };
    let client = redis::Client::open(local_url(port));
    match client.and_then(|c| c.get_connection()) {
        Ok(mut c) => match redis::cmd("PING").query::<String>(&mut c) {
            Ok(_) => match (
                pid,
                redis::cmd("INFO").arg("server").query::<String>(&mut c),
            ) {
                (Some(pid), Ok(info)) => info
                    .lines()
                    .any(|l| l.trim() == format!("process_id:{pid}")),
                _ => true,
            },
            Err(e) => noauth(&e),
        },
        Err(e) => noauth(&e),
    }
}

/// Waits up to 10 s for the server on `port` to answer, returning early
/// when its process (`child`, if known) exits.
fn wait_up(port: u16, mut child: Option<&mut Child>) -> Up {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(c) = child.as_deref_mut()
            && matches!(c.try_wait(), Ok(Some(_)))
        {
            return Up::Exited;
        }
        if answers(port, child.as_deref().map(Child::id)) {
            return Up::Ready;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Up::Silent
}

impl RedisServer {
    /// Starts a server with persistence off, or `None` if that fails.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with extra `redis-server` arguments (such as
    /// `["--busy-reply-threshold", "20"]`).
    pub fn start_with(args: &[&str]) -> Option<Self> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
        // A port chosen free can be taken (by another test's server or a
        // client's ephemeral port) before the server binds it: the server
        // then exits at once, and a new port is tried.
        for _ in 0..ATTEMPTS {
            let port = Self::free_port()?;
            let child = match spawn(port, &args) {
                Ok(c) => c,
                Err(e) => {
                    // CI installs redis-server: there a missing server is a
                    // failure, never a silent skip.
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "redis-server is required under CI=true: {e}"
                    );
                    eprintln!("note: redis-server not started ({e}); the Redis peer is skipped");
                    return None;
                }
            };
            let mut server = RedisServer {
                child: Some(child),
                port,
                args: args.clone(),
            };
            match wait_up(port, server.child.as_mut()) {
                Up::Ready => return Some(server),
                Up::Exited => continue,
                Up::Silent => break,
            }
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server did not answer within 10 s (or exited on {ATTEMPTS} ports) under CI=true"
        );
        eprintln!("note: redis-server did not answer; the Redis peer is skipped");
        None
    }

    /// Whether the server answers within 10 s.
    pub(crate) fn wait_ready(&mut self) -> bool {
        matches!(wait_up(self.port, self.child.as_mut()), Up::Ready)
    }

    /// A free loopback port (for a second listener, such as `--tls-port`).
    pub fn free_port() -> Option<u16> {
        Some(
            TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port(),
        )
    }

    /// Its URL.
    pub fn url(&self) -> String {
        local_url(self.port)
    }

    /// A new connection.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }

    /// The server's process id (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (by its pid) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty: persistence is
    /// off); panics if it does not answer within 10 s.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger for a moment after the kill.
            match spawn(self.port, &self.args) {
                Ok(c) => self.child = Some(c),
                Err(e) => panic!("cannot restart redis-server: {e}"),
            }
            if self.wait_ready() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not restart");
            self.stop();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let ok = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {pid} failed");
        }
    }

    /// Freezes the server process (`SIGSTOP`): connections stay open and
    /// nothing answers, as on a stalled host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.stop();
    }
}

/// A throwaway 3-master Redis Cluster on free loopback ports (`redis-server
/// --cluster-enabled yes` ×3, joined by `redis-cli --cluster create`), in
/// its own temporary directory; every node killed by its pid on drop.
/// `None` (with a note) when it cannot be started, except under `CI=true`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Child>,
    /// The nodes' ports on 127.0.0.1.
    pub ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts the cluster and waits until it reports `cluster_state:ok`.
    pub fn start() -> Option<Self> {
        let fail = |why: String| {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis cluster under CI=true: {why}"
            );
            eprintln!("note: no Redis Cluster ({why}); the cluster tests are skipped");
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "dk-cluster-{}-{}",
            std::process::id(),
            RedisServer::free_port()?
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return fail(e.to_string());
        }
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        // As for one server: a node whose port (or bus port) was taken
        // before it bound it exits, and the nodes start again on new ports.
        let mut up = false;
        for _ in 0..ATTEMPTS {
            for mut c in cluster.nodes.drain(..) {
                let _ = c.kill();
                let _ = c.wait();
            }
            cluster.ports.clear();
            for _ in 0..3 {
                let (Some(port), Some(bus)) = (RedisServer::free_port(), RedisServer::free_port())
                else {
                    return fail("no free port".into());
                };
                let conf = cluster.dir.join(format!("nodes-{port}.conf"));
                let args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-config-file",
                    &conf.display().to_string(),
                    "--cluster-node-timeout",
                    "2000",
                    "--dir",
                    &cluster.dir.display().to_string(),
                ]
                .map(String::from)
                .into();
                match spawn(port, &args) {
                    Ok(c) => cluster.nodes.push(c),
                    Err(e) => return fail(e.to_string()),
                }
                cluster.ports.push(port);
            }
            let mut exited = false;
            for (port, child) in cluster.ports.iter().zip(cluster.nodes.iter_mut()) {
                match wait_up(*port, Some(child)) {
                    Up::Ready => {}
                    Up::Exited => exited = true,
                    Up::Silent => return fail("a node did not answer".into()),
                }
                if exited {
                    break;
                }
            }
            if !exited {
                up = true;
                break;
            }
        }
        if !up {
            return fail(format!(
                "a node exited at start on {ATTEMPTS} sets of ports"
            ));
        }
        let node = |p: &u16| RedisServer {
            child: None,
            port: *p,
            args: Vec::new(),
        };
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !created.is_ok_and(|s| s.success()) {
            return fail("redis-cli --cluster create failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = cluster.ports.iter().all(|p| {
                node(p)
                    .connection()
                    .ok()
                    .and_then(|mut c| {
                        redis::cmd("CLUSTER")
                            .arg("INFO")
                            .query::<String>(&mut c)
                            .ok()
                    })
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return Some(cluster);
            }
            if Instant::now() > deadline {
                return fail("the cluster did not reach cluster_state:ok".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A seed node's URL.
    pub fn url(&self) -> String {
        local_url(self.ports[0])
    }

    /// Kills node `i` (by its pid) and waits for it to exit: its slots
    /// stop answering (the cluster has no replicas to fail over to).
    pub fn kill_node(&mut self, i: usize) {
        let _ = self.nodes[i].kill();
        let _ = self.nodes[i].wait();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
