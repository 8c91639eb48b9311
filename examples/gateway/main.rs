//! The seed's API platform as an axum server: per-API-key plans (free /
//! pro) from a rules file, per-IP limits on login, a cached menu endpoint
//! over a slow store (single-flight async loads), and nearby drivers from
//! a `GeoIndex` a background task keeps moving.
//!
//! ```text
//! cargo run --release --example gateway                       # serves, prints a curl line
//! cargo run --release --example gateway -- --backend redis    # limiter state in Redis
//! cargo run --release --example gateway -- --self-test        # serves, asks itself, exits
//! ```
//!
//! Options: `--addr HOST:PORT` (default 127.0.0.1:3000; port 0 picks a
//! free one), `--rules FILE` (default: `examples/gateway/rules.json`),
//! `--backend memory|redis`, `--redis-url URL` (without it a throwaway
//! `redis-server` is started), `--drivers N` (default 20,000),
//! `--store-latency-ms MS` (default 50).

mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::{Backend, Options, RulesFile};
use dispatchkit_test_support::redis_server::RedisServer;

struct Args {
    addr: String,
    rules: Option<String>,
    backend: String,
    redis_url: Option<String>,
    drivers: usize,
    store_latency_ms: u64,
    self_test: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:3000".into(),
        rules: None,
        backend: "memory".into(),
        redis_url: None,
        drivers: 20_000,
        store_latency_ms: 50,
        self_test: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?,
            "--rules" => a.rules = Some(value()?),
            "--backend" => a.backend = value()?,
            "--redis-url" => a.redis_url = Some(value()?),
            "--drivers" => a.drivers = value()?.parse().map_err(|e| format!("--drivers: {e}"))?,
            "--store-latency-ms" => {
                a.store_latency_ms = value()?
                    .parse()
                    .map_err(|e| format!("--store-latency-ms: {e}"))?
            }
            "--self-test" => a.self_test = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.backend != "memory" && a.backend != "redis" {
        return Err(format!("--backend {}: expected memory or redis", a.backend));
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse().map_err(|e| format!("usage error: {e}"))?;
    let rules = match &args.rules {
        Some(path) => RulesFile::parse(&std::fs::read_to_string(path)?)?,
        None => RulesFile::bundled(),
    };
    // A throwaway server when Redis is asked for without a URL; stopped
    // (by pid) when `_server` drops.
    let mut _server = None;
    let backend = match (args.backend.as_str(), &args.redis_url) {
        ("redis", Some(url)) => Backend::Redis(url.clone()),
        ("redis", None) => {
            let s =
                RedisServer::start().ok_or("redis-server is not installed; pass --redis-url")?;
            let url = s.url();
            _server = Some(s);
            Backend::Redis(url)
        }
        _ => Backend::Memory,
    };
    let gateway = app::build(Options {
        rules: rules.clone(),
        backend: backend.clone(),
        store_latency: Duration::from_millis(args.store_latency_ms),
        drivers: args.drivers,
        clock: None,
    })?;
    tokio::spawn(app::feed(
        Arc::clone(&gateway.index),
        args.drivers,
        (args.drivers / 10).max(1),
        Duration::from_secs(1),
    ));
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let addr = listener.local_addr()?;
    let key = rules
        .api_keys
        .iter()
        .filter(|(_, k)| k.tier == dispatchkit::ratelimit::Tier::Free)
        .map(|(name, _)| name.clone())
        .min()
        .unwrap_or_default();
    let curl = format!("curl -i -H 'x-api-key: {key}' http://{addr}/v1/restaurants/17/menu");
    println!("gateway on http://{addr} (limits: {backend:?})");
    println!("try:  {curl}");
    println!(
        "      curl -i -H 'x-api-key: {key}' 'http://{addr}/v1/drivers/nearby?lon=-0.1276&lat=51.5072&radius=5'"
    );
    println!("      curl -i -X POST http://{addr}/v1/login");
    let store_loads = Arc::clone(&gateway.store_loads);
    let service = gateway
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    if args.self_test {
        tokio::spawn(async move { axum::serve(listener, service).await });
        // What the printed curl line does, then exit.
        let res = reqwest::Client::new()
            .get(format!("http://{addr}/v1/restaurants/17/menu"))
            .header("x-api-key", &key)
            .send()
            .await?;
        let status = res.status();
        let limit = res
            .headers()
            .get("ratelimit")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let body = res.text().await?;
        println!(
            "self-test: {status}, RateLimit: {limit}, body: {body} (store loads: {})",
            store_loads.load(std::sync::atomic::Ordering::Relaxed)
        );
        if !status.is_success() {
            return Err(format!("self-test failed: {status}").into());
        }
        return Ok(());
    }
    axum::serve(listener, service).await?;
    Ok(())
}
