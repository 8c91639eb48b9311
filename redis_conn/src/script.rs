//! Lua scripts as the Redis backends call them: a [`Lua`] script (its
//! source kept, to load it again after `NOSCRIPT` inside a pipeline) and a
//! [`Call`] of it (keys and arguments), run alone ([`eval`]: `EVALSHA`,
//! loaded on `NOSCRIPT`) or many in one pipeline ([`eval_many`]: one round
//! trip; on a Cluster each call goes to the node of its first key).

use redis::Value;

use crate::Session;

/// A script and its source.
pub struct Lua {
    script: redis::Script,
    src: String,
}

impl Lua {
    /// The script of `src`.
    pub fn new(src: String) -> Self {
        Self {
            script: redis::Script::new(&src),
            src,
        }
    }

    /// The script's SHA-1, as `EVALSHA` names it.
    pub fn hash(&self) -> &str {
        self.script.get_hash()
    }
}

impl std::fmt::Debug for Lua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lua").field("sha1", &self.hash()).finish()
    }
}

/// One call of a script: its keys (all in one slot on a Cluster) and
/// arguments.
pub struct Call {
    lua: &'static Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("script", &self.lua.hash())
            .field("keys", &self.keys.len())
            .field("args", &self.args.len())
            .finish()
    }
}

impl Call {
    /// A call of `lua` on `keys`, without arguments yet.
    pub fn new(lua: &'static Lua, keys: Vec<Vec<u8>>) -> Self {
        Self {
            lua,
            keys,
            args: Vec::with_capacity(8),
        }
    }

    /// Appends an argument (its `Display` form).
    pub fn arg(mut self, a: impl std::fmt::Display) -> Self {
        self.push(a);
        self
    }

    /// Appends an argument in place (its `Display` form).
    pub fn push(&mut self, a: impl std::fmt::Display) {
        use std::io::Write;
        let mut buf = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = write!(buf, "{a}");
        self.args.push(buf);
    }

    /// Appends a binary argument.
    pub fn push_bytes(&mut self, a: Vec<u8>) {
        self.args.push(a);
    }

    /// How many arguments the call has.
    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    fn evalsha(&self) -> redis::Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(self.lua.hash()).arg(self.keys.len());
        for k in &self.keys {
            c.arg(k.as_slice());
        }
        for a in &self.args {
            c.arg(a.as_slice());
        }
        c
    }

    fn invocation(&self) -> redis::ScriptInvocation<'static> {
        let mut inv = self.lua.script.prepare_invoke();
        for k in &self.keys {
            inv.key(k.as_slice());
        }
        for a in &self.args {
            inv.arg(a.as_slice());
        }
        inv
    }
}

/// Runs one call: `EVALSHA`, loading the script on `NOSCRIPT`.
///
/// # Errors
/// What the server or the connection reported.
pub fn eval(con: &mut dyn redis::ConnectionLike, call: &Call) -> redis::RedisResult<Value> {
    call.invocation().invoke(con)
}

/// [`eval`] on an async connection.
///
/// # Errors
/// What the server or the connection reported.
#[cfg(feature = "tokio")]
pub async fn eval_async(
    mut con: redis::aio::MultiplexedConnection,
    call: &Call,
) -> redis::RedisResult<Value> {
    call.invocation().invoke_async(&mut con).await
}

/// Runs `calls` in one pipeline (one round trip); after `NOSCRIPT` (a
/// restarted or flushed server) loads their scripts and runs it again.
/// Single server only: on a Cluster use [`eval_pipelined`].
///
/// # Errors
/// What the server or the connection reported (the first error of the
/// pipeline).
pub fn eval_many(
    con: &mut dyn redis::ConnectionLike,
    calls: &[Call],
) -> redis::RedisResult<Vec<Value>> {
    let mut pipe = redis::pipe();
    for c in calls {
        pipe.add_command(c.evalsha());
    }
    with_scripts(con, calls, |con| pipe.query(con))
}

/// [`eval_many`] on a [`Session`]: on a Cluster one pipeline per node,
/// each call on the node of its keys' slot.
///
/// # Errors
/// What the server or the connection reported (the first error).
pub fn eval_pipelined(session: &mut Session<'_>, calls: &[Call]) -> redis::RedisResult<Vec<Value>> {
    eval_pipelined_with(session, calls, &[])
}

/// [`eval_pipelined`] with plain commands after the calls, in the same
/// pipeline; replies: the calls', then the commands'.
///
/// # Errors
/// What the server or the connection reported (the first error).
pub fn eval_pipelined_with(
    session: &mut Session<'_>,
    calls: &[Call],
    extra: &[redis::Cmd],
) -> redis::RedisResult<Vec<Value>> {
    let mut cmds: Vec<redis::Cmd> = calls.iter().map(Call::evalsha).collect();
    cmds.extend(extra.iter().cloned());
    match session.pipeline(&cmds) {
        Err(e) if is_noscript(&e) => {
            load(session.con(), calls)?;
            session.pipeline(&cmds)
        }
        r => r,
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Runs `query`; after `NOSCRIPT` loads the calls' scripts and runs it
/// again.
fn with_scripts(
    con: &mut dyn redis::ConnectionLike,
    calls: &[Call],
    query: impl Fn(&mut dyn redis::ConnectionLike) -> redis::RedisResult<Vec<Value>>,
) -> redis::RedisResult<Vec<Value>> {
    match query(con) {
        Err(e) if is_noscript(&e) => {
            load(con, calls)?;
            query(con)
        }
        r => r,
    }
}

/// Loads the scripts of `calls` (each once); on a Cluster the client sends
/// each load to every primary.
fn load(con: &mut dyn redis::ConnectionLike, calls: &[Call]) -> redis::RedisResult<()> {
    let mut loaded: Vec<&str> = Vec::new();
    for c in calls {
        let h = c.lua.hash();
        if !loaded.contains(&h) {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(&c.lua.src)
                .query::<String>(con)?;
            loaded.push(h);
        }
    }
    Ok(())
}
