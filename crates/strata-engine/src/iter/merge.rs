//! The merging iterator: one ordered stream from many child iterators.
//!
//! Internal keys are unique across children (every entry has its own
//! sequence number), so a direction switch re-seeks the other children to
//! the current key and needs no tie-breaking.

use std::cmp::Ordering;

use super::InternalIterator;
use crate::error::Result;
use crate::key::cmp_internal;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Forward,
    Reverse,
}

/// Merges children into one stream in internal-key order.
pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    /// Indices of valid children, a binary heap: the smallest key on top
    /// going forward, the largest going in reverse.
    heap: Vec<usize>,
    dir: Dir,
}

impl MergingIterator {
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> MergingIterator {
        MergingIterator {
            heap: Vec::with_capacity(children.len()),
            children,
            dir: Dir::Forward,
        }
    }

    /// True if child `a` should sit above child `b` in the heap.
    fn above(&self, a: usize, b: usize) -> bool {
        let o = cmp_internal(self.children[a].key(), self.children[b].key());
        match self.dir {
            Dir::Forward => o == Ordering::Less,
            Dir::Reverse => o == Ordering::Greater,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let best = if r < n && self.above(self.heap[r], self.heap[l]) {
                r
            } else {
                l
            };
            if self.above(self.heap[best], self.heap[i]) {
                self.heap.swap(best, i);
                i = best;
            } else {
                return;
            }
        }
    }

    fn rebuild(&mut self, dir: Dir) {
        self.dir = dir;
        self.heap.clear();
        self.heap
            .extend((0..self.children.len()).filter(|&i| self.children[i].valid()));
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    /// After the top child moved: drop it if exhausted, else restore the heap.
    fn fix_top(&mut self) {
        let top = self.heap[0];
        if !self.children[top].valid() {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        if !self.heap.is_empty() {
            self.sift_down(0);
        }
    }

    fn each_child(
        &mut self,
        mut f: impl FnMut(&mut dyn InternalIterator) -> Result<()>,
    ) -> Result<()> {
        for c in &mut self.children {
            f(c.as_mut())?;
        }
        Ok(())
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.each_child(|c| c.seek_to_first())?;
        self.rebuild(Dir::Forward);
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.each_child(|c| c.seek_to_last())?;
        self.rebuild(Dir::Reverse);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.each_child(|c| c.seek(target))?;
        self.rebuild(Dir::Forward);
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.each_child(|c| c.seek_for_prev(target))?;
        self.rebuild(Dir::Reverse);
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid());
        if self.dir == Dir::Reverse {
            // Every other child goes to its first entry after the current key.
            let key = self.key().to_vec();
            let top = self.heap[0];
            for (i, c) in self.children.iter_mut().enumerate() {
                if i != top {
                    c.seek(&key)?;
                    if c.valid() && cmp_internal(c.key(), &key) == Ordering::Equal {
                        c.next()?;
                    }
                }
            }
            self.rebuild(Dir::Forward);
            debug_assert!(self.heap.first() == Some(&top));
        }
        let top = self.heap[0];
        self.children[top].next()?;
        self.fix_top();
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid());
        if self.dir == Dir::Forward {
            let key = self.key().to_vec();
            let top = self.heap[0];
            for (i, c) in self.children.iter_mut().enumerate() {
                if i != top {
                    c.seek_for_prev(&key)?;
                    if c.valid() && cmp_internal(c.key(), &key) == Ordering::Equal {
                        c.prev()?;
                    }
                }
            }
            self.rebuild(Dir::Reverse);
            debug_assert!(self.heap.first() == Some(&top));
        }
        let top = self.heap[0];
        self.children[top].prev()?;
        self.fix_top();
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.children[self.heap[0]].key()
    }

    fn value(&self) -> &[u8] {
        self.children[self.heap[0]].value()
    }
}

/// An iterator over a sorted vector of (internal key, value), for tests.
pub struct VecIterator {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    pos: Option<usize>,
}

impl VecIterator {
    /// `entries` must be sorted by `cmp_internal`.
    pub fn new(entries: Vec<(Vec<u8>, Vec<u8>)>) -> VecIterator {
        debug_assert!(entries
            .windows(2)
            .all(|w| cmp_internal(&w[0].0, &w[1].0) == Ordering::Less));
        VecIterator { entries, pos: None }
    }
}

impl InternalIterator for VecIterator {
    fn valid(&self) -> bool {
        self.pos.is_some()
    }
    fn seek_to_first(&mut self) -> Result<()> {
        self.pos = if self.entries.is_empty() {
            None
        } else {
            Some(0)
        };
        Ok(())
    }
    fn seek_to_last(&mut self) -> Result<()> {
        self.pos = self.entries.len().checked_sub(1);
        Ok(())
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let i = self
            .entries
            .partition_point(|(k, _)| cmp_internal(k, target) == Ordering::Less);
        self.pos = (i < self.entries.len()).then_some(i);
        Ok(())
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let i = self
            .entries
            .partition_point(|(k, _)| cmp_internal(k, target) != Ordering::Greater);
        self.pos = i.checked_sub(1);
        Ok(())
    }
    fn next(&mut self) -> Result<()> {
        self.pos = self.pos.map(|p| p + 1).filter(|&p| p < self.entries.len());
        Ok(())
    }
    fn prev(&mut self) -> Result<()> {
        self.pos = self.pos.and_then(|p| p.checked_sub(1));
        Ok(())
    }
    fn key(&self) -> &[u8] {
        &self.entries[self.pos.expect("valid")].0
    }
    fn value(&self) -> &[u8] {
        &self.entries[self.pos.expect("valid")].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use rand::{Rng, SeedableRng};

    #[test]
    fn merges_and_switches_direction_like_a_sorted_vector() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _case in 0..200 {
            let n_children = rng.gen_range(0..5);
            let mut all = Vec::new();
            let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
            let mut seq = 1;
            for _ in 0..n_children {
                let mut v = Vec::new();
                for _ in 0..rng.gen_range(0..20) {
                    let k = vec![rng.gen_range(b'a'..b'k')];
                    v.push((internal_key(&k, seq, ValueKind::Put), k));
                    seq += 1;
                }
                v.sort_by(|a, b| cmp_internal(&a.0, &b.0));
                all.extend(v.iter().cloned());
                children.push(Box::new(VecIterator::new(v)));
            }
            all.sort_by(|a, b| cmp_internal(&a.0, &b.0));
            let mut model = VecIterator::new(all);
            let mut m = MergingIterator::new(children);
            for _step in 0..60 {
                match rng.gen_range(0..6) {
                    0 => {
                        m.seek_to_first().unwrap();
                        model.seek_to_first().unwrap();
                    }
                    1 => {
                        m.seek_to_last().unwrap();
                        model.seek_to_last().unwrap();
                    }
                    2 => {
                        let t = internal_key(
                            &[rng.gen_range(b'a'..b'l')],
                            rng.gen_range(0..seq),
                            ValueKind::Put,
                        );
                        m.seek(&t).unwrap();
                        model.seek(&t).unwrap();
                    }
                    3 => {
                        let t = internal_key(
                            &[rng.gen_range(b'a'..b'l')],
                            rng.gen_range(0..seq),
                            ValueKind::Put,
                        );
                        m.seek_for_prev(&t).unwrap();
                        model.seek_for_prev(&t).unwrap();
                    }
                    4 if model.valid() => {
                        m.next().unwrap();
                        model.next().unwrap();
                    }
                    5 if model.valid() => {
                        m.prev().unwrap();
                        model.prev().unwrap();
                    }
                    _ => {}
                }
                assert_eq!(m.valid(), model.valid());
                if m.valid() {
                    assert_eq!(m.key(), model.key());
                }
            }
        }
    }
}
