//! `target/city/map.svg`: one metro with driver density, surge hexagons
//! coloured by multiplier and a few matched routes.

use std::fmt::Write as _;

use dispatchkit::workload::METROS;

use crate::report::{self, group};
use crate::sim::World;

/// A point in degrees (`lon`, `lat`).
pub type Deg = (f64, f64);

/// What the map shows.
pub struct MapData<'a> {
    pub metro: &'a str,
    pub centre: Deg,
    /// Half-width of the square shown, metres.
    pub half_m: f64,
    /// Driver positions (all of the metro's, or a sample).
    pub drivers: &'a [Deg],
    /// Surge zones: hexagon boundary and multiplier (1.0 = no surge).
    pub surge: &'a [(Vec<Deg>, f64)],
    /// Routes: the vertices of each, driver → pickup (→ corners) → drop-off.
    pub routes: &'a [Vec<Deg>],
    /// A labelled landmark (the stadium).
    pub landmark: Option<(Deg, &'a str)>,
    /// Caption lines under the title.
    pub caption: &'a [String],
}

const SIZE: f64 = 900.0;
const GRID: usize = 90;

struct Projection {
    centre: Deg,
    m_per_deg_lat: f64,
    m_per_deg_lon: f64,
    half_m: f64,
}

impl Projection {
    fn xy(&self, (lon, lat): Deg) -> (f64, f64) {
        let mut dlon = lon - self.centre.0;
        if dlon > 180.0 {
            dlon -= 360.0;
        } else if dlon < -180.0 {
            dlon += 360.0;
        }
        let x = dlon * self.m_per_deg_lon;
        let y = (lat - self.centre.1) * self.m_per_deg_lat;
        (
            (x + self.half_m) / (2.0 * self.half_m) * SIZE,
            (self.half_m - y) / (2.0 * self.half_m) * SIZE,
        )
    }

    fn inside(&self, (x, y): (f64, f64)) -> bool {
        (0.0..SIZE).contains(&x) && (0.0..SIZE).contains(&y)
    }
}

/// Surge colour: pale yellow at 1.1×, deep red at the cap.
fn surge_colour(m: f64, cap: f64) -> String {
    let t = ((m - 1.0) / (cap - 1.0).max(0.1)).clamp(0.0, 1.0);
    let (r, g, b) = (255.0, 230.0 - 200.0 * t, 120.0 - 110.0 * t);
    format!("rgb({:.0},{:.0},{:.0})", r, g, b)
}

/// What was drawn, element by element.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drawn {
    pub density_cells: u64,
    pub surge_polygons: u64,
    pub routes: u64,
    pub route_lines: u64,
}

/// Half-width of the square drawn around the metro centre, metres.
const HALF_M: f64 = 25_000.0;
/// Drivers drawn: at most this many of the metro's (an even sample).
const MAX_DRIVERS: usize = 200_000;

/// The map of the run's metro at the end of the stretch; fills `m`.
pub fn draw(w: &World, m: &mut report::Map) -> String {
    let metro = w.opts.metro;
    let centre = METROS[metro].centre();
    let positions = w.drivers.positions();
    let mine: Vec<usize> = w
        .drivers
        .fleet
        .drivers()
        .iter()
        .filter(|d| usize::from(d.metro) == metro)
        .map(|d| d.id as usize)
        .collect();
    let step = mine.len().div_ceil(MAX_DRIVERS).max(1);
    let drivers: Vec<Deg> = mine
        .iter()
        .step_by(step)
        .map(|&i| (positions[i].x(), positions[i].y()))
        .collect();
    let p = projection((centre.x(), centre.y()), HALF_M);
    let surge: Vec<(Vec<Deg>, f64)> = w
        .surge
        .map
        .iter()
        .filter(|(_, c)| c.multiplier.milli() > 1_000)
        .map(|(cell, c)| {
            let b: Vec<Deg> = cell.boundary().iter().map(|v| (v.lng(), v.lat())).collect();
            (b, f64::from(c.multiplier.milli()) / 1000.0)
        })
        .filter(|(b, _)| b.iter().any(|&v| p.inside(p.xy(v))))
        .collect();
    let routes: Vec<Vec<Deg>> = w
        .rides
        .routes
        .iter()
        .map(|r| r.iter().map(|v| (v.x(), v.y())).collect())
        .collect();
    let venue = crate::rides::venue(metro);
    let rides = &w.rides.report;
    let caption = [
        format!(
            "{} drivers at {}:{:02} ({} shown); {} ride requests city-wide, {} matched",
            group(mine.len() as u64),
            w.end_ms / 60_000,
            w.end_ms / 1000 % 60,
            group(drivers.len() as u64),
            group(rides.requests),
            group(rides.assigned)
        ),
        format!(
            "a stadium lets out 5 km north-west of the centre from 0:20; {} surge zones here",
            surge.len()
        ),
    ];
    let (svg, drawn) = render(&MapData {
        metro: METROS[metro].name,
        centre: (centre.x(), centre.y()),
        half_m: HALF_M,
        drivers: &drivers,
        surge: &surge,
        routes: &routes,
        landmark: Some(((venue.x(), venue.y()), "stadium")),
        caption: &caption,
    });
    *m = report::Map {
        path: "target/city/map.svg".into(),
        metro: METROS[metro].name.into(),
        drivers_drawn: drivers.len() as u64,
        density_cells: drawn.density_cells,
        surge_polygons: drawn.surge_polygons,
        routes: drawn.routes,
        route_lines: drawn.route_lines,
    };
    svg
}

fn projection(centre: Deg, half_m: f64) -> Projection {
    let m_per_deg_lat = 6_371_008.8_f64.to_radians();
    Projection {
        centre,
        m_per_deg_lat,
        m_per_deg_lon: m_per_deg_lat * centre.1.to_radians().cos(),
        half_m,
    }
}

/// Renders the SVG document.
pub fn render(d: &MapData<'_>) -> (String, Drawn) {
    let mut drawn = Drawn::default();
    let p = projection(d.centre, d.half_m);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{h}" viewBox="0 0 {SIZE} {h}" font-family="Helvetica, Arial, sans-serif">"#,
        h = SIZE + 70.0
    );
    let _ = writeln!(
        s,
        r##"<rect width="{SIZE}" height="{SIZE}" fill="#10141c"/>"##
    );

    // Driver density: a GRID × GRID heat map.
    let mut bins = vec![0u32; GRID * GRID];
    for &pt in d.drivers {
        let (x, y) = p.xy(pt);
        if p.inside((x, y)) {
            let (i, j) = (
                (x / SIZE * GRID as f64) as usize,
                (y / SIZE * GRID as f64) as usize,
            );
            bins[j.min(GRID - 1) * GRID + i.min(GRID - 1)] += 1;
        }
    }
    let max = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let cell = SIZE / GRID as f64;
    let _ = writeln!(s, r#"<g id="density">"#);
    for (k, &n) in bins.iter().enumerate().filter(|(_, n)| **n > 0) {
        drawn.density_cells += 1;
        let o = 0.12 + 0.88 * (n as f64).ln_1p() / max.ln_1p();
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{cell:.1}" height="{cell:.1}" fill="#3fa9f5" fill-opacity="{o:.2}"/>"##,
            (k % GRID) as f64 * cell,
            (k / GRID) as f64 * cell
        );
    }
    let _ = writeln!(s, "</g>");

    // Surge hexagons.
    let cap = d.surge.iter().map(|(_, m)| *m).fold(1.0, f64::max);
    let _ = writeln!(
        s,
        r##"<g id="surge" stroke="#ffffff" stroke-opacity="0.25" stroke-width="0.5">"##
    );
    for (boundary, m) in d.surge.iter().filter(|(_, m)| *m > 1.0) {
        drawn.surge_polygons += 1;
        let pts: Vec<String> = boundary
            .iter()
            .map(|&v| {
                let (x, y) = p.xy(v);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polygon points="{}" fill="{}" fill-opacity="0.7"><title>{m:.2}x</title></polygon>"#,
            pts.join(" "),
            surge_colour(*m, cap)
        );
    }
    let _ = writeln!(s, "</g>");

    // Routes: driver → pickup dashed, pickup → drop-off solid (along the
    // trip's street-grid path).
    let _ = writeln!(s, r#"<g id="routes" fill="none" stroke-linecap="round">"#);
    for r in d.routes {
        drawn.routes += 1;
        let pts: Vec<(f64, f64)> = r.iter().map(|&v| p.xy(v)).collect();
        for (k, w) in pts.windows(2).enumerate() {
            drawn.route_lines += 1;
            let dash = if k == 0 {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#7CFC9A" stroke-width="2"{dash}/>"##,
                w[0].0, w[0].1, w[1].0, w[1].1
            );
        }
        // Dots: the driver (green), the pickup (white), the drop-off (pink);
        // vertices in between are street corners.
        let last = pts.len().saturating_sub(1);
        for (k, &(x, y)) in pts.iter().enumerate() {
            let colour = match k {
                0 => "#7CFC9A",
                1 => "#ffffff",
                k if k == last => "#ff5d8f",
                _ => continue,
            };
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#
            );
        }
    }
    let _ = writeln!(s, "</g>");

    if let Some((at, label)) = d.landmark {
        let (x, y) = p.xy(at);
        let _ = writeln!(
            s,
            r##"<g id="landmark"><circle cx="{x:.1}" cy="{y:.1}" r="7" fill="none" stroke="#ffd166" stroke-width="2.5"/><text x="{:.1}" y="{:.1}" fill="#ffd166" font-size="14">{}</text></g>"##,
            x + 10.0,
            y - 10.0,
            escape(label)
        );
    }

    // Title, scale bar and legend.
    let km10 = 10_000.0 / (2.0 * d.half_m) * SIZE;
    let _ = writeln!(
        s,
        r##"<g id="legend" fill="#e8edf5" font-size="14"><text x="16" y="28" font-size="20">{} — dispatchkit city simulation</text>"##,
        d.metro
    );
    for (i, line) in d.caption.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="16" y="{}">{}</text>"#,
            50 + 18 * i,
            escape(line)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="16" y1="{y}" x2="{x2:.1}" y2="{y}" stroke="#e8edf5" stroke-width="3"/><text x="{tx:.1}" y="{ty}">10 km</text>"##,
        y = SIZE - 20.0,
        x2 = 16.0 + km10,
        tx = 22.0 + km10,
        ty = SIZE - 15.0
    );
    let legend_y = SIZE + 25.0;
    let _ = writeln!(
        s,
        r##"<rect x="0" y="{SIZE}" width="{SIZE}" height="70" fill="#10141c"/><rect x="16" y="{ly}" width="14" height="14" fill="#3fa9f5"/><text x="36" y="{ty}">driver density</text><rect x="176" y="{ly}" width="14" height="14" fill="{c1}"/><rect x="192" y="{ly}" width="14" height="14" fill="{c2}"/><text x="212" y="{ty}">surge 1.1× … {cap:.1}× (H3 cells)</text><line x1="436" y1="{my}" x2="466" y2="{my}" stroke="#7CFC9A" stroke-width="2" stroke-dasharray="4 3"/><text x="472" y="{ty}">driver to pickup</text><line x1="616" y1="{my}" x2="646" y2="{my}" stroke="#7CFC9A" stroke-width="2"/><circle cx="652" cy="{my}" r="3.5" fill="#ff5d8f"/><text x="662" y="{ty}">trip to drop-off</text>"##,
        ly = legend_y - 12.0,
        ty = legend_y,
        my = legend_y - 5.0,
        c1 = surge_colour(1.1, cap),
        c2 = surge_colour(cap, cap)
    );
    let _ = writeln!(s, "</g>\n</svg>");
    (s, drawn)
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
