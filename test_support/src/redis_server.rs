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

impl RedisServer {
    /// Starts a server with persistence off, or `None` if that fails.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with extra `redis-server` arguments (such as
    /// `["--busy-reply-threshold", "20"]`).
    pub fn start_with(args: &[&str]) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
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
        let server = RedisServer {
            child: Some(child),
            port,
            args,
        };
        if server.wait_ready() {
            return Some(server);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server did not answer within 10 s under CI=true"
        );
        eprintln!("note: redis-server did not answer within 10 s; the Redis peer is skipped");
        None
    }

    fn wait_ready(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Up: PONG, or (a server whose default user is off) NOAUTH,
            // at connection or at the PING.
            let noauth = |e: &redis::RedisError| {
                e.code() == Some("NOAUTH")
                    || e.kind() == redis::ErrorKind::AuthenticationFailed
                    || e.to_string().contains("NOAUTH")
            };
            match self.connection() {
                Ok(mut c) => match redis::cmd("PING").query::<String>(&mut c) {
                    Ok(_) => return true,
                    Err(e) if noauth(&e) => return true,
                    Err(_) => {}
                },
                Err(e) if noauth(&e) => return true,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
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
        format!("redis://127.0.0.1:{}/", self.port)
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
