//! scratch
use std::time::Duration;
use dispatchkit_matching::routing::*;
fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tsplib");
    let optima = std::fs::read_to_string(format!("{dir}/OPTIMA.tsv")).unwrap();
    let budget: f64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1.0);
    let mut sum = 0.0; let mut k = 0;
    for line in optima.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let name = f[0]; let opt: f64 = f[3].parse().unwrap();
        let inst = TsplibInstance::parse(&std::fs::read_to_string(format!("{dir}/{name}.tsp")).unwrap()).unwrap();
        let d = inst.distances().unwrap();
        let opts = SolveOptions { max_iterations: std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(u64::MAX), time_budget: Some(Duration::from_secs_f64(budget)), ..Default::default() };
        let s = solve(&d, RouteShape::Closed, &opts).unwrap();
        let gap = (s.route.length / opt - 1.0) * 100.0;
        sum += gap; k += 1;
        println!("{name:10} {:5} {opt:8} {:8} {gap:6.2}% init {:6.2}% iters {} impr {} {:?}", inst.dimension(), s.route.length, (s.initial_length/opt-1.0)*100.0, s.iterations, s.improvements, s.elapsed);
    }
    println!("mean gap {:.2}%", sum / k as f64);
}
