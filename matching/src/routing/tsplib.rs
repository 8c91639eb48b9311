//! A reader for the TSPLIB95 `.tsp` and `.tour` formats (Reinelt 1991,
//! 1995), as far as symmetric coordinate instances go.

use crate::MatchingError;
use crate::routing::{PlanarMetric, PlanarPoints};

/// A symmetric TSPLIB instance given by node coordinates.
///
/// Accepted variants: header lines `KEY : value`, `KEY: value` or
/// `KEY :value` in any order and case of spacing; `EDGE_WEIGHT_TYPE` one
/// of `EUC_2D`, `CEIL_2D`, `ATT`; coordinates as integers, decimals or
/// scientific notation (`2.00000e+02`); nodes in any order; a missing
/// `EOF` line. Anything else (explicit matrices, `GEO`, 3-D) is a typed
/// error, never a panic.
///
/// ```
/// use dispatchkit_matching::routing::{Distances, TsplibInstance};
///
/// let text = "NAME: tiny\nTYPE : TSP\nDIMENSION:3\nEDGE_WEIGHT_TYPE : EUC_2D\n\
///             NODE_COORD_SECTION\n1 0 0\n2 3.0e0 4\n3 0 4.4\n";
/// let inst = TsplibInstance::parse(text)?;
/// assert_eq!(inst.name, "tiny");
/// let d = inst.distances()?;
/// assert_eq!((d.dist(0, 1), d.dist(0, 2)), (5.0, 4.0));
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TsplibInstance {
    /// `NAME`.
    pub name: String,
    /// `COMMENT` lines, joined by newlines.
    pub comment: String,
    /// `EDGE_WEIGHT_TYPE`.
    pub metric: PlanarMetric,
    /// Node coordinates; node `i` of the file is `coords[i - 1]`.
    pub coords: Vec<(f64, f64)>,
}

fn key_value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(':')?;
    Some((k.trim(), v.trim()))
}

fn parse_dimension(line_no: usize, v: &str, line: &str) -> Result<usize, MatchingError> {
    v.parse::<usize>().map_err(|_| {
        MatchingError::tsplib(line_no, "DIMENSION is not a non-negative integer", line)
    })
}

impl TsplibInstance {
    /// Parses a `.tsp` file. O(size of the text).
    ///
    /// # Errors
    /// [`MatchingError::Tsplib`] for a malformed header or coordinate line,
    /// an unsupported `TYPE` / `EDGE_WEIGHT_TYPE`, a node id outside
    /// `1..=DIMENSION`, a node given twice or missing, a non-finite
    /// coordinate; [`MatchingError::Empty`] for `DIMENSION: 0`.
    pub fn parse(text: &str) -> Result<Self, MatchingError> {
        let mut name = String::new();
        let mut comment = String::new();
        let mut dimension: Option<usize> = None;
        let mut metric: Option<PlanarMetric> = None;
        let mut coords: Vec<Option<(f64, f64)>> = Vec::new();
        let mut in_coords = false;
        let mut read = 0usize;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if line == "EOF" {
                break;
            }
            if in_coords && read < coords.len() {
                let mut it = line.split_whitespace();
                let (Some(id), Some(x), Some(y), None) =
                    (it.next(), it.next(), it.next(), it.next())
                else {
                    return Err(MatchingError::tsplib(line_no, "expected `id x y`", raw));
                };
                let id: usize = id.parse().map_err(|_| {
                    MatchingError::tsplib(line_no, "node id is not an integer", raw)
                })?;
                let x: f64 = x
                    .parse()
                    .map_err(|_| MatchingError::tsplib(line_no, "x is not a number", raw))?;
                let y: f64 = y
                    .parse()
                    .map_err(|_| MatchingError::tsplib(line_no, "y is not a number", raw))?;
                if !(x.is_finite() && y.is_finite()) {
                    return Err(MatchingError::tsplib(
                        line_no,
                        "coordinate is not finite",
                        raw,
                    ));
                }
                if id == 0 || id > coords.len() {
                    return Err(MatchingError::tsplib(
                        line_no,
                        "node id outside 1..=DIMENSION",
                        raw,
                    ));
                }
                if coords[id - 1].replace((x, y)).is_some() {
                    return Err(MatchingError::tsplib(line_no, "node given twice", raw));
                }
                read += 1;
                continue;
            }
            if line.trim_end_matches(':').trim() == "NODE_COORD_SECTION" {
                let dim = dimension.ok_or_else(|| {
                    MatchingError::tsplib(line_no, "NODE_COORD_SECTION before DIMENSION", raw)
                })?;
                if metric.is_none() {
                    return Err(MatchingError::tsplib(
                        line_no,
                        "NODE_COORD_SECTION before EDGE_WEIGHT_TYPE",
                        raw,
                    ));
                }
                // Never allocate from the header alone: the section must
                // hold a line per node.
                let lines_left = text
                    .lines()
                    .skip(i + 1)
                    .map(str::trim)
                    .take_while(|l| *l != "EOF")
                    .filter(|l| !l.is_empty())
                    .count();
                if dim > lines_left {
                    return Err(MatchingError::tsplib(
                        line_no,
                        "DIMENSION is larger than the number of node lines that follow",
                        &format!("DIMENSION {dim}, {lines_left} lines"),
                    ));
                }
                coords = vec![None; dim];
                in_coords = true;
                continue;
            }
            let Some((key, value)) = key_value(line) else {
                if in_coords {
                    return Err(MatchingError::tsplib(
                        line_no,
                        "more nodes than DIMENSION",
                        raw,
                    ));
                }
                return Err(MatchingError::tsplib(
                    line_no,
                    "unsupported section or malformed line",
                    raw,
                ));
            };
            match key {
                "NAME" => name = value.to_string(),
                "COMMENT" => {
                    if !comment.is_empty() {
                        comment.push('\n');
                    }
                    comment.push_str(value);
                }
                "TYPE" => {
                    if value != "TSP" {
                        return Err(MatchingError::tsplib(
                            line_no,
                            "only TYPE: TSP is supported",
                            raw,
                        ));
                    }
                }
                "DIMENSION" => dimension = Some(parse_dimension(line_no, value, raw)?),
                "EDGE_WEIGHT_TYPE" => {
                    metric = Some(match value {
                        "EUC_2D" => PlanarMetric::Euc2d,
                        "CEIL_2D" => PlanarMetric::Ceil2d,
                        "ATT" => PlanarMetric::Att,
                        _ => {
                            return Err(MatchingError::tsplib(
                                line_no,
                                "unsupported EDGE_WEIGHT_TYPE (EUC_2D, CEIL_2D and ATT are)",
                                raw,
                            ));
                        }
                    })
                }
                "NODE_COORD_TYPE" => {
                    if value != "TWOD_COORDS" {
                        return Err(MatchingError::tsplib(
                            line_no,
                            "only TWOD_COORDS are supported",
                            raw,
                        ));
                    }
                }
                "DISPLAY_DATA_TYPE" => {}
                _ => {
                    return Err(MatchingError::tsplib(
                        line_no,
                        "unsupported header key",
                        raw,
                    ));
                }
            }
        }
        let dimension = dimension.ok_or_else(|| MatchingError::tsplib(0, "no DIMENSION", ""))?;
        if dimension == 0 {
            return Err(MatchingError::Empty {
                what: "TSPLIB instance",
                reason: "DIMENSION is 0",
            });
        }
        let metric = metric.ok_or_else(|| MatchingError::tsplib(0, "no EDGE_WEIGHT_TYPE", ""))?;
        if !in_coords {
            return Err(MatchingError::tsplib(0, "no NODE_COORD_SECTION", ""));
        }
        let coords = coords
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.ok_or_else(|| {
                    MatchingError::tsplib(
                        0,
                        "node missing from NODE_COORD_SECTION",
                        &(i + 1).to_string(),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            comment,
            metric,
            coords,
        })
    }

    /// Number of nodes.
    pub fn dimension(&self) -> usize {
        self.coords.len()
    }

    /// The distances of the instance.
    ///
    /// # Errors
    /// [`MatchingError::InvalidCoordinate`] for a non-finite coordinate
    /// (only possible when `coords` was edited by hand).
    pub fn distances(&self) -> Result<PlanarPoints, MatchingError> {
        PlanarPoints::new(self.coords.clone(), self.metric)
    }
}

/// Parses a TSPLIB `.tour` file: the `TOUR_SECTION` node ids (1-based, in
/// visiting order, ended by `-1`, `EOF` or the end of the text), returned
/// 0-based. O(size of the text).
///
/// ```
/// use dispatchkit_matching::routing::parse_tour;
///
/// let tour = parse_tour("NAME : t\nTYPE : TOUR\nTOUR_SECTION\n1\n3\n2\n-1\n")?;
/// assert_eq!(tour, vec![0, 2, 1]);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// [`MatchingError::Tsplib`] when there is no `TOUR_SECTION`, an entry is
/// not an integer, or `TYPE` is not `TOUR`; [`MatchingError::Empty`] for
/// an empty section. (Whether the ids form a permutation of the instance's
/// nodes is checked by [`crate::routing::route_length`].)
pub fn parse_tour(text: &str) -> Result<Vec<usize>, MatchingError> {
    let mut in_tour = false;
    let mut out = Vec::new();
    'lines: for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "EOF" {
            break;
        }
        if !in_tour {
            if line.trim_end_matches(':').trim() == "TOUR_SECTION" {
                in_tour = true;
            } else if let Some(("TYPE", v)) = key_value(line)
                && v != "TOUR"
            {
                return Err(MatchingError::tsplib(line_no, "TYPE is not TOUR", raw));
            }
            continue;
        }
        for tok in line.split_whitespace() {
            let v: i64 = tok
                .parse()
                .map_err(|_| MatchingError::tsplib(line_no, "tour entry is not an integer", raw))?;
            if v == -1 {
                break 'lines;
            }
            if v < 1 {
                return Err(MatchingError::tsplib(line_no, "node ids start at 1", raw));
            }
            out.push(v as usize - 1);
        }
    }
    if !in_tour {
        return Err(MatchingError::tsplib(0, "no TOUR_SECTION", ""));
    }
    if out.is_empty() {
        return Err(MatchingError::Empty {
            what: "TOUR_SECTION",
            reason: "a tour visits at least one node",
        });
    }
    Ok(out)
}
