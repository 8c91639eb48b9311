//! The slab's unit tests: arrays against `Vec` twins, the accounting of
//! every slot a pool hands out, and two threads on one pool.
use super::*;
use proptest::prelude::*;

fn slot(id: u64) -> Slot {
    Slot {
        id,
        lon_q: id as u32,
        lat_q: !(id as u32),
        meta: id.rotate_left(17),
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Appends this many slots to array `a`.
    Push(usize, u16),
    /// Gives array `a`'s block back (the array becomes empty).
    Release(usize),
    /// Moves array `a` to a block of exactly its length's class, as a
    /// compaction does.
    Refit(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, prop_oneof![1..8u16, 8..300u16, 300..700u16])
            .prop_map(|(a, n)| Op::Push(a, n)),
        1 => (0..6usize).prop_map(Op::Release),
        1 => (0..6usize).prop_map(Op::Refit),
    ]
}

/// Every array's slots against a `Vec` twin after every step, and the
/// slab's accounting (every slot taken is in one block, no two blocks
/// overlap).
fn run(ops: &[Op]) {
    let mut slab = Slab::new(Pool::new());
    let mut arrays: Vec<Slots> = (0..6).map(|_| Slots::default()).collect();
    let mut twins: Vec<Vec<Slot>> = vec![Vec::new(); 6];
    let mut next = 0u64;
    for op in ops {
        match *op {
            Op::Push(a, n) => {
                for _ in 0..n {
                    next += 1;
                    slab.push(&mut arrays[a], slot(next));
                    twins[a].push(slot(next));
                }
            }
            Op::Release(a) => {
                slab.release(std::mem::take(&mut arrays[a]));
                twins[a].clear();
            }
            Op::Refit(a) => {
                let mut fresh = slab.with_capacity(arrays[a].len());
                for &s in arrays[a].iter() {
                    slab.push(&mut fresh, s);
                }
                let old = std::mem::replace(&mut arrays[a], fresh);
                slab.release(old);
            }
        }
        for (s, t) in arrays.iter().zip(&twins) {
            assert_eq!(&s[..], &t[..]);
        }
        slab.check(arrays.iter());
    }
}

proptest! {
    #[test]
    fn arrays_agree_with_vecs_and_blocks_never_overlap(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(&ops);
    }
}

#[test]
fn growth_crosses_every_class_and_pages_and_chunks() {
    // 40,000 slots in one array: every class, then arrays of their
    // own; a second array of small blocks takes pages from several
    // chunks meanwhile.
    let mut ops = Vec::new();
    for _ in 0..200 {
        ops.push(Op::Push(0, 200));
        ops.push(Op::Push(1, 5));
        ops.push(Op::Refit(1));
    }
    run(&ops);
}

#[test]
fn freed_blocks_are_reused_and_growth_is_geometric() {
    let mut slab = Slab::new(Pool::new());
    let mut a = slab.with_capacity(10);
    let p = a.ptr;
    slab.push(&mut a, slot(1));
    slab.release(a);
    // The same class gets the block back.
    let b = slab.with_capacity(11);
    assert_eq!(b.ptr, p);
    slab.release(b);
    // Growth by class, then by half: a copy per 1.33–1.5× of growth,
    // so pushing n slots copies O(n) of them.
    let mut s = Slots::default();
    let mut caps = vec![];
    for i in 0..100_000 {
        slab.push(&mut s, slot(i));
        if caps.last() != Some(&s.cap) {
            caps.push(s.cap);
        }
    }
    assert_eq!(&caps[..CLASSES.len()], &CLASSES[..]);
    for w in caps.windows(2) {
        assert!(u64::from(w[1]) * 3 >= u64::from(w[0]) * 4, "{caps:?}");
    }
    assert!(caps.len() < 40, "{caps:?}");
    // Page ends are carved, not lost (at most 2 slots a page: every
    // class is even).
    assert!(slab.lost * 256 <= slab.taken, "{slab:?}");
    slab.check(std::iter::once(&s));
}

#[test]
fn chunks_grow_to_aligned_huge_pages() {
    let pool = Pool::new();
    let mut slab = Slab::new(Arc::clone(&pool));
    let mut arrays: Vec<Slots> = (0..2_000).map(|_| Slots::default()).collect();
    for i in 0..2_000 * 200 {
        slab.push(&mut arrays[i % 2_000], slot(i as u64));
    }
    slab.check(arrays.iter());
    let st = pool.state.lock();
    let sizes: Vec<usize> = st.chunks.iter().map(|(_, l)| l.size()).collect();
    assert!(sizes.len() > 7, "{sizes:?}");
    for (i, &(p, l)) in st.chunks.iter().enumerate() {
        assert_eq!(l.size(), (FIRST_CHUNK << i.min(5)).min(HUGE));
        if l.size() == HUGE {
            assert_eq!(p.as_ptr() as usize % HUGE, 0, "chunk {i} not aligned");
        }
    }
}

#[test]
fn slabs_of_one_pool_on_two_threads_get_disjoint_pages() {
    let pool = Pool::new();
    let arrays: Vec<Vec<Slots>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2u64)
            .map(|t| {
                let pool = Arc::clone(&pool);
                sc.spawn(move || {
                    let mut slab = Slab::new(pool);
                    let mut arrays: Vec<Slots> = (0..64).map(|_| Slots::default()).collect();
                    for i in 0..64 * 150u64 {
                        let a = (i % 64) as usize;
                        slab.push(&mut arrays[a], slot(t << 32 | i));
                    }
                    slab.check(arrays.iter());
                    // The arrays outlive the slab here; the pool they
                    // came from is still alive in the caller.
                    arrays
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let mut blocks = Vec::new();
    for (t, arrays) in arrays.iter().enumerate() {
        for (a, s) in arrays.iter().enumerate() {
            let want: Vec<Slot> = (0..150u64)
                .map(|k| slot((t as u64) << 32 | (k * 64 + a as u64)))
                .collect();
            assert_eq!(&s[..], &want[..], "thread {t}, array {a}");
            blocks.push((s.ptr.as_ptr() as usize, s.cap as usize));
        }
    }
    assert_disjoint(blocks);
    assert!(
        pool.state.lock().chunks.len() >= 2,
        "more than one chunk used"
    );
}

#[test]
fn blocks_one_shard_gives_up_serve_another_before_new_pages() {
    let pool = Pool::new();
    let (mut a, mut b) = (Slab::new(Arc::clone(&pool)), Slab::new(Arc::clone(&pool)));
    // Shard a's cells grow to 24 slots and are all given up (their
    // drivers left): a keeps LOCAL free blocks of each class, the pool
    // the rest.
    let mut arrays: Vec<Slots> = (0..200).map(|_| Slots::default()).collect();
    for i in 0..200 * 20 {
        a.push(&mut arrays[i % 200], slot(i as u64));
    }
    for s in arrays.drain(..) {
        a.release(s);
    }
    a.check(std::iter::empty());
    assert!(a.free.iter().all(|l| l.len() <= LOCAL), "{a:?}");
    let paged = pool.state.lock().paged;
    // Shard b's cells grow the same way: served from the pool's lists,
    // no new page.
    let mut grown: Vec<Slots> = (0..100).map(|_| Slots::default()).collect();
    for i in 0..100 * 20 {
        b.push(&mut grown[i % 100], slot(1 << 40 | i as u64));
    }
    assert_eq!(
        pool.state.lock().paged,
        paged,
        "b took a page while the pool had blocks"
    );
    for (j, s) in grown.iter().enumerate() {
        let want: Vec<Slot> = (0..20)
            .map(|r| slot(1 << 40 | (r * 100 + j) as u64))
            .collect();
        assert_eq!(&s[..], &want[..]);
    }
    b.check(grown.iter());
    // Every slot handed out as pages is held by one slab or the pool,
    // once.
    check_pool([(&a, vec![]), (&b, grown.iter().collect())].into_iter());
}
