//! The gateway's router and state, shared by `main.rs` and
//! `tests/gateway.rs` (which serves it on 127.0.0.1:0 and drives it with a
//! real HTTP client).
//!
//! - API routes need an `x-api-key`; the key's account and tier come from
//!   the rules file, and the rules table limits each account by tier
//!   (free / pro = `premium`) with the IETF `RateLimit` headers.
//! - `POST /v1/login` is limited per client IP (the connection's peer).
//! - `GET /v1/restaurants/{id}/menu` is cached; concurrent misses of one
//!   menu run one load of the (slow, simulated) store.
//! - `GET /v1/drivers/nearby?lon&lat&radius` (km, default 5) answers the
//!   10 nearest available drivers from a `GeoIndex`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dispatchkit::cache::Cache;
use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, Filter, GeoIndex, LonLat, Search, Status, Unit,
};
use dispatchkit::ratelimit::layer::{
    Endpoint, HeaderKey, KeyExtractor, PeerIp, Policy, RateLimitLayer, RedisPolicy, Rejection,
    RequestLimit,
};
use dispatchkit::ratelimit::{
    KeyKind, PolicyLimiter, RedisConfig, RedisPolicyLimiter, RuleTable, Tier,
};
use serde::Deserialize;

/// The rules file: API keys (account, tier) and the rules table.
#[derive(Debug, Clone, Deserialize)]
pub struct RulesFile {
    /// API key -> its account and plan.
    pub api_keys: HashMap<String, ApiKey>,
    /// Limits by tier, endpoint and key kind (the file's `rules` array).
    #[serde(flatten)]
    pub rules: RuleTable,
}

/// One API key's account and plan.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ApiKey {
    /// The account the key belongs to (what is rate-limited).
    pub account: u64,
    /// The account's plan.
    pub tier: Tier,
}

impl RulesFile {
    /// The file shipped beside the example.
    pub fn bundled() -> Self {
        Self::parse(include_str!("rules.json")).expect("the bundled rules file is valid")
    }

    /// Parses a rules file (JSON).
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// Where the limiters keep their state.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In this process.
    Memory,
    /// In the Redis server at this URL (shared by every gateway instance).
    Redis(String),
}

/// A clock the tests control: what `now()` returns, and the wall-clock
/// time of the instant `at`.
pub type TestClock = (Arc<dyn Fn() -> Instant + Send + Sync>, Instant, SystemTime);

/// How to build the gateway.
pub struct Options {
    /// Keys and rules.
    pub rules: RulesFile,
    /// Limiter state.
    pub backend: Backend,
    /// How long the simulated menu store takes per load.
    pub store_latency: Duration,
    /// Drivers in the index (the workload's metro fleet).
    pub drivers: usize,
    /// The limiters' clock (`None`: the real one).
    pub clock: Option<TestClock>,
}

/// The gateway: its router and what the tests look at.
pub struct Gateway {
    /// Serve with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub router: Router,
    /// Menu loads that reached the store.
    pub store_loads: Arc<AtomicU64>,
    /// The driver index (a background task may feed it).
    pub index: Arc<GeoIndex>,
}

/// The API key's account, looked up in the rules file: a missing key is
/// `401`, an unknown one `403`.
#[derive(Debug, Clone)]
struct Account {
    header: HeaderKey,
    keys: Arc<HashMap<String, ApiKey>>,
}

impl KeyExtractor<Body> for Account {
    type Key = u64;

    fn extract<'r>(
        &self,
        req: &'r axum::http::Request<Body>,
    ) -> Result<std::borrow::Cow<'r, u64>, Rejection> {
        let key = self.header.extract(req)?;
        self.keys
            .get(&*key)
            .map(|k| std::borrow::Cow::Owned(k.account))
            .ok_or_else(|| Rejection::new(StatusCode::FORBIDDEN, "unknown API key"))
    }
}

#[derive(Clone)]
struct AppState {
    menus: Arc<Cache<u64, Arc<str>>>,
    store_loads: Arc<AtomicU64>,
    store_latency: Duration,
    index: Arc<GeoIndex>,
}

/// Restaurants the simulated store knows.
const RESTAURANTS: u64 = 10_000;

/// Builds the gateway.
pub fn build(opts: Options) -> Result<Gateway, Box<dyn std::error::Error>> {
    let keys = Arc::new(opts.rules.api_keys.clone());
    let tiers: HashMap<u64, Tier> = keys.values().map(|k| (k.account, k.tier)).collect();
    let account = Account {
        header: HeaderKey::new("x-api-key")?,
        keys,
    };
    let route = || Endpoint::route(|e| e.get::<MatchedPath>().map(MatchedPath::as_str));
    let peer = || PeerIp::from_extension(|c: &ConnectInfo<SocketAddr>| c.0.ip());
    let table = &opts.rules.rules;
    let state = AppState {
        menus: Arc::new(
            Cache::builder(1_000)
                .time_to_live(Duration::from_secs(60))
                .negative_ttl(Duration::from_secs(10))
                .build()?,
        ),
        store_loads: Arc::new(AtomicU64::new(0)),
        store_latency: opts.store_latency,
        index: Arc::new(fleet(opts.drivers)?),
    };
    let gateway = |api: Router<AppState>, login: Router<AppState>| Gateway {
        router: api.merge(login).with_state(state.clone()),
        store_loads: Arc::clone(&state.store_loads),
        index: Arc::clone(&state.index),
    };
    let clock = opts.clock.clone();
    // The limiters count time from the clock's origin (a test's `t0`).
    let origin = clock.as_ref().map_or_else(Instant::now, |c| c.1);
    Ok(match &opts.backend {
        Backend::Memory => {
            let api = Policy::new(
                PolicyLimiter::<u64>::new_at(table, origin)?,
                account,
                KeyKind::ApiKey,
            )
            .tier(move |a| tiers.get(a).copied())
            .endpoint(route());
            let login = Policy::new(
                PolicyLimiter::<IpAddr>::new_at(table, origin)?,
                peer(),
                KeyKind::Ip,
            )
            .endpoint(route());
            gateway(
                api_routes(layer(api, &clock)),
                login_routes(layer(login, &clock)),
            )
        }
        Backend::Redis(url) => {
            let limiter = || RedisPolicyLimiter::new(table, RedisConfig::new(url.clone()));
            let api = RedisPolicy::new(Arc::new(limiter()?), account, KeyKind::ApiKey)
                .tier(move |a| tiers.get(a).copied())
                .endpoint(route());
            let login =
                RedisPolicy::new(Arc::new(limiter()?), peer(), KeyKind::Ip).endpoint(route());
            gateway(
                api_routes(layer(api, &clock)),
                login_routes(layer(login, &clock)),
            )
        }
    })
}

fn layer<L>(limit: L, clock: &Option<TestClock>) -> RateLimitLayer<L> {
    let layer = RateLimitLayer::new(limit).legacy_headers(true);
    match clock {
        Some((now, at, wall)) => {
            let now = Arc::clone(now);
            layer.clock(move || now(), *at, *wall)
        }
        None => layer,
    }
}

fn api_routes<L: RequestLimit<Body>>(limit: RateLimitLayer<L>) -> Router<AppState> {
    Router::new()
        .route("/v1/restaurants/{id}/menu", get(menu))
        .route("/v1/drivers/nearby", get(nearby))
        // After routing, so the limit sees the matched route.
        .route_layer(limit)
}

fn login_routes<L: RequestLimit<Body>>(limit: RateLimitLayer<L>) -> Router<AppState> {
    Router::new()
        .route("/v1/login", post(login))
        .route_layer(limit)
}

/// An RFC 9457 problem response.
fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Debug)]
struct NoSuchRestaurant;

async fn menu(State(s): State<AppState>, Path(id): Path<u64>) -> Response {
    let store_loads = Arc::clone(&s.store_loads);
    let latency = s.store_latency;
    let loaded = s
        .menus
        .try_get_or_load_async(&id, || async move {
            // The slow store: one read per load, however many requests wait.
            store_loads.fetch_add(1, Ordering::Relaxed);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if id >= RESTAURANTS {
                return Err(NoSuchRestaurant);
            }
            let items: Vec<_> = (0..3)
                .map(|i| serde_json::json!({"item": format!("dish-{id}-{i}"), "price_cents": 850 + 125 * i}))
                .collect();
            Ok(Arc::<str>::from(serde_json::json!({"restaurant": id, "items": items}).to_string()))
        })
        .await;
    match loaded {
        Ok(json) => (
            [(header::CONTENT_TYPE, "application/json")],
            json.to_string(),
        )
            .into_response(),
        Err(_) => problem(StatusCode::NOT_FOUND, &format!("no restaurant {id}")),
    }
}

#[derive(Debug, Deserialize)]
struct Near {
    lon: f64,
    lat: f64,
    /// Kilometres (default 5, at most 50).
    radius: Option<f64>,
}

async fn nearby(
    State(s): State<AppState>,
    q: Result<Query<Near>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return problem(
            StatusCode::BAD_REQUEST,
            "expected ?lon=<deg>&lat=<deg>[&radius=<km>]",
        );
    };
    let center = match LonLat::new(q.lon, q.lat) {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let radius = q.radius.unwrap_or(5.0);
    if !(radius > 0.0 && radius <= 50.0) {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("radius {radius} km: must be in (0, 50]"),
        );
    }
    let search = Search::radius(center, radius, Unit::Kilometers)
        .count(10)
        .filter(Filter::available());
    match s.index.search_at(&search, Instant::now()) {
        Ok(hits) => {
            let drivers: Vec<_> = hits
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "id": h.id.get(),
                        "lon": h.pos.lon(),
                        "lat": h.pos.lat(),
                        "distance_km": h.distance,
                    })
                })
                .collect();
            Json(serde_json::json!({ "drivers": drivers })).into_response()
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn login() -> Response {
    Json(serde_json::json!({ "token": "demo-token" })).into_response()
}

/// The metro workload's first `drivers` drivers, every other one available.
fn fleet(drivers: usize) -> Result<GeoIndex, Box<dyn std::error::Error>> {
    let index = GeoIndex::new();
    if drivers == 0 {
        return Ok(index);
    }
    let fleet = dispatchkit::workload::Fleet::generate(&dispatchkit::workload::MetroConfig {
        drivers,
        ..Default::default()
    })?;
    let t0 = Instant::now();
    let batch: Vec<DriverUpdate> = fleet
        .drivers()
        .iter()
        .map(|d| {
            let status = if d.id % 2 == 0 {
                Status::AVAILABLE
            } else {
                Status::BUSY
            };
            Ok(DriverUpdate::new(
                DriverId::new(d.id)?,
                LonLat::new(d.position.x(), d.position.y())?,
                t0,
            )
            .with_attrs(Attrs {
                status,
                ..Attrs::default()
            }))
        })
        .collect::<Result<_, dispatchkit::geo::GeoError>>()?;
    let _ = index.upsert_batch_at(&batch, t0);
    Ok(index)
}

/// Moves the fleet: every `every`, the next `per_tick` updates of the
/// workload's update stream (what drivers' phones would send).
pub async fn feed(index: Arc<GeoIndex>, drivers: usize, per_tick: usize, every: Duration) {
    let Ok(fleet) = dispatchkit::workload::Fleet::generate(&dispatchkit::workload::MetroConfig {
        drivers,
        ..Default::default()
    }) else {
        return;
    };
    let Ok(mut stream) = fleet.update_stream(&Default::default()) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let batch: Vec<DriverUpdate> = (0..per_tick)
            .filter_map(|_| {
                let u = stream.next_update();
                Some(DriverUpdate::new(
                    DriverId::new(u.driver).ok()?,
                    LonLat::new(u.position.x(), u.position.y()).ok()?,
                    now,
                ))
            })
            .collect();
        let _ = index.upsert_batch_at(&batch, now);
    }
}
