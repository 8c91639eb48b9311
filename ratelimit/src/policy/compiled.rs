//! A rules table compiled for O(1) resolution, with stable ids so that
//! state survives table changes, and each rule's place in a key's entry.

use hashbrown::HashMap;

use crate::RateLimitError;
use crate::gcra::Gcra;
use crate::policy::decision::{BucketRule, BucketRules, MAX_LIMITS, PolicyInfo, RuleName};
use crate::rule::{RuleAlg, Slot};
use crate::rules::{AlgorithmKind, KeyKind, RuleTable, Tier};

/// Packed state words held inline in an entry: three token buckets (the
/// seed's second + hour + day), or a window counter and a bucket.
pub(crate) const INLINE_WORDS: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// Stable id: the same (selector, name, window, count, burst,
    /// algorithm) keeps it across table changes.
    pub(crate) id: u32,
    pub(crate) info: PolicyInfo,
    pub(crate) alg: RuleAlg,
    pub(crate) slot: Slot,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledSet {
    /// Stable id of the selector.
    pub(crate) id: u32,
    pub(crate) rules: Vec<CompiledRule>,
    /// Packed state words per key.
    pub(crate) words: usize,
    /// Sliding logs per key.
    pub(crate) logs: usize,
    /// Whether a key's state fits inline in its entry (no log, at most
    /// [`INLINE_WORDS`] words).
    pub(crate) inline: bool,
    /// The smallest capacity of its rules: the largest cost it can grant.
    pub(crate) capacity: u32,
    /// When the set is inline and every rule is a token bucket: the
    /// buckets, whose TATs are the entry's words.
    pub(crate) buckets: Option<BucketSet>,
}

/// The token buckets of a set held inline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketSet {
    /// How many (1 ..= [`INLINE_WORDS`]).
    pub(crate) n: usize,
    /// The buckets in rule order with their advertised limits, as a
    /// decision carries them (unused places repeat the last rule).
    pub(crate) rules: BucketRules,
}

const NO_SET: u16 = u16::MAX;

/// A rules table compiled for O(1) resolution.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) sets: Vec<CompiledSet>,
    /// Set id → index into `sets` (`u32::MAX`: not in this table).
    by_id: Vec<u32>,
    endpoints: HashMap<String, usize>,
    /// Per endpoint row (the last is "any other endpoint"):
    /// `[tier or none][kind]` → index into `sets`.
    rows: Vec<[[u16; 3]; 4]>,
}

fn tier_idx(t: Option<Tier>) -> usize {
    match t {
        Some(Tier::Free) => 0,
        Some(Tier::Premium) => 1,
        Some(Tier::Enterprise) => 2,
        None => 3,
    }
}

fn kind_idx(k: KeyKind) -> usize {
    match k {
        KeyKind::User => 0,
        KeyKind::Ip => 1,
        KeyKind::ApiKey => 2,
    }
}

type Selector = (Option<Tier>, Option<String>, Option<KeyKind>);
type LimitKey = (String, u64, u32, Option<u32>, AlgorithmKind);

/// Stable ids: the same selector (and the same limit within it) keeps its
/// id across table changes, which is how state survives them.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sets: std::collections::HashMap<Selector, u32>,
    rules: std::collections::HashMap<(u32, LimitKey), u32>,
}

impl Compiled {
    pub(crate) fn new(table: &RuleTable, reg: &mut Registry) -> Result<Self, RateLimitError> {
        let mut sets = Vec::with_capacity(table.rules.len());
        let mut selectors: Vec<Selector> = Vec::new();
        for rs in &table.rules {
            let sel: Selector = (rs.tier, rs.endpoint.clone(), rs.kind);
            let label = format!("{:?}/{:?}/{:?}", sel.0, sel.1, sel.2);
            if selectors.contains(&sel) {
                return Err(RateLimitError::InvalidRule {
                    rule: label,
                    reason: "two rule sets have the same tier, endpoint and kind",
                });
            }
            if rs.limits.is_empty() || rs.limits.len() > MAX_LIMITS {
                return Err(RateLimitError::InvalidRule {
                    rule: label,
                    reason: "a rule set holds 1 to 8 limits",
                });
            }
            let mut rules = Vec::with_capacity(rs.limits.len());
            let mut names = Vec::new();
            for l in &rs.limits {
                let name_s = l.display_name();
                let name = RuleName::new(&name_s)?;
                if names.contains(&name) {
                    return Err(RateLimitError::InvalidRule {
                        rule: name_s,
                        reason: "two limits of one rule set share a name",
                    });
                }
                names.push(name);
                let (alg, quota) = RuleAlg::compile(l)?;
                rules.push((name, alg, quota, l));
            }
            let n = reg.sets.len() as u32;
            let set_id = *reg.sets.entry(sel.clone()).or_insert(n);
            let (mut words, mut logs) = (0usize, 0usize);
            let rules: Vec<CompiledRule> = rules
                .into_iter()
                .map(|(name, alg, quota, l)| {
                    let key: LimitKey = (
                        name.as_str().to_string(),
                        crate::time::duration_nanos(l.window.duration()),
                        l.count,
                        l.burst,
                        l.algorithm,
                    );
                    let n = reg.rules.len() as u32;
                    let id = *reg.rules.entry((set_id, key)).or_insert(n);
                    // At most MAX_LIMITS rules of at most 2 words each.
                    let slot = Slot {
                        word: words as u16,
                        log: logs as u16,
                    };
                    words += alg.words();
                    logs += usize::from(alg.is_log());
                    CompiledRule {
                        id,
                        info: PolicyInfo {
                            name,
                            limit: quota.limit(),
                            window: quota.period(),
                        },
                        alg,
                        slot,
                    }
                })
                .collect();
            let capacity = rules
                .iter()
                .map(|r| r.alg.capacity())
                .min()
                .unwrap_or(u32::MAX);
            let inline = logs == 0 && words <= INLINE_WORDS;
            let buckets: Vec<Gcra> = rules
                .iter()
                .map_while(|r| match r.alg {
                    RuleAlg::Gcra(g) if inline => Some(g),
                    _ => None,
                })
                .collect();
            let buckets =
                (!buckets.is_empty() && buckets.len() == rules.len()).then(|| BucketSet {
                    n: buckets.len(),
                    rules: std::array::from_fn(|i| {
                        let last = i.min(buckets.len() - 1);
                        BucketRule {
                            info: rules[last].info,
                            gcra: buckets[last],
                        }
                    }),
                });
            selectors.push(sel);
            sets.push(CompiledSet {
                id: set_id,
                rules,
                words,
                logs,
                inline,
                capacity,
                buckets,
            });
        }
        let mut endpoints = HashMap::new();
        for (_, e, _) in &selectors {
            if let Some(e) = e {
                let n = endpoints.len();
                endpoints.entry(e.clone()).or_insert(n);
            }
        }
        let find = |t: Option<Tier>, e: Option<&str>, k: Option<KeyKind>| {
            selectors
                .iter()
                .position(|s| s.0 == t && s.1.as_deref() == e && s.2 == k)
        };
        let mut rows = vec![[[NO_SET; 3]; 4]; endpoints.len() + 1];
        let mut names: Vec<(&String, usize)> = endpoints.iter().map(|(e, &i)| (e, i)).collect();
        names.sort_by_key(|&(_, i)| i);
        let wild = endpoints.len();
        for (ri, row) in rows.iter_mut().enumerate().take(wild + 1) {
            let ep = names.get(ri).map(|(e, _)| e.as_str());
            for (ti, tier) in [
                Some(Tier::Free),
                Some(Tier::Premium),
                Some(Tier::Enterprise),
                None,
            ]
            .into_iter()
            .enumerate()
            {
                for (ki, kind) in [KeyKind::User, KeyKind::Ip, KeyKind::ApiKey]
                    .into_iter()
                    .enumerate()
                {
                    let k = Some(kind);
                    // Most specific first; endpoint outranks tier outranks kind.
                    let order = [
                        (ep, tier, k),
                        (ep, tier, None),
                        (ep, None, k),
                        (None, tier, k),
                        (ep, None, None),
                        (None, tier, None),
                        (None, None, k),
                        (None, None, None),
                    ];
                    let hit = order.iter().find_map(|&(e, t, k)| find(t, e, k));
                    row[ti][ki] = hit.map_or(NO_SET, |i| i as u16);
                }
            }
        }
        let mut by_id = vec![u32::MAX; reg.sets.len()];
        for (i, s) in sets.iter().enumerate() {
            by_id[s.id as usize] = i as u32;
        }
        Ok(Self {
            sets,
            by_id,
            endpoints,
            rows,
        })
    }

    /// Index into `sets` of the set that applies; O(1) (one string hash
    /// when the table names endpoints).
    #[inline]
    pub(crate) fn resolve(
        &self,
        tier: Option<Tier>,
        endpoint: &str,
        kind: KeyKind,
    ) -> Option<usize> {
        let row = if self.endpoints.is_empty() {
            0
        } else {
            self.endpoints
                .get(endpoint)
                .copied()
                .unwrap_or(self.rows.len() - 1)
        };
        let i = usize::from(self.rows[row][tier_idx(tier)][kind_idx(kind)]);
        (i < self.sets.len()).then_some(i)
    }

    /// The set with stable id `id`, if this table has it. O(1).
    #[inline]
    pub(crate) fn by_id(&self, id: u32) -> Option<&CompiledSet> {
        let i = *self.by_id.get(id as usize)?;
        self.sets.get(i as usize)
    }
}
