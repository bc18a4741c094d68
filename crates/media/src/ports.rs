//! The RTP port pool: even ports between two bounds, RTCP on port + 1 (RFC 3550 §11),
//! handed out round-robin so a just-freed port is not reused at once (late packets of
//! the previous call would land in the next one).
//!
//! Pure bookkeeping: whether the OS lets us bind a port is the caller's business; a
//! port it could not bind is given back with [`PortAllocator::release`] and the next
//! one tried.

use crate::Error;

/// A pool of even RTP ports in `low..=high` (RTCP on each port + 1).
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    in_use: Vec<bool>,
    next: usize,
    used: usize,
    low: u16,
    high: u16,
}

impl PortAllocator {
    /// A pool over the even ports of `low..=high` whose RTCP port (+1) also fits in
    /// `u16`. Both bounds are inclusive: 20000..=39998 gives 10 000 pairs.
    pub fn new(low: u16, high: u16) -> Result<Self, Error> {
        let first = low
            .checked_add(low % 2)
            .ok_or(Error::PortRange { low, high })?;
        // The last even port whose RTCP port (+1) exists.
        let last = high.min(u16::MAX - 1) & !1;
        if first == 0 || first > last {
            return Err(Error::PortRange { low, high });
        }
        let count = usize::from((last - first) / 2) + 1;
        Ok(Self {
            first,
            in_use: vec![false; count],
            next: 0,
            used: 0,
            low,
            high,
        })
    }

    /// Takes the next free even port, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<u16> {
        let count = self.in_use.len();
        for step in 0..count {
            let i = (self.next + step) % count;
            if let Some(slot) = self.in_use.get_mut(i).filter(|used| !**used) {
                *slot = true;
                self.used += 1;
                self.next = (i + 1) % count;
                return Some(self.port_of(i));
            }
        }
        None
    }

    /// Gives `port` back. Ports outside the pool or not taken are ignored.
    pub fn release(&mut self, port: u16) {
        if let Some(slot) = self.index_of(port).and_then(|i| self.in_use.get_mut(i))
            && std::mem::replace(slot, false)
        {
            self.used -= 1;
        }
    }

    /// Ports pairs in the pool.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    /// Port pairs currently taken.
    pub fn in_use(&self) -> usize {
        self.used
    }

    /// The configured bounds.
    pub fn bounds(&self) -> (u16, u16) {
        (self.low, self.high)
    }

    fn port_of(&self, index: usize) -> u16 {
        // index < capacity, so first + 2 * index <= last.
        self.first + 2 * index as u16
    }

    fn index_of(&self, port: u16) -> Option<usize> {
        let offset = port.checked_sub(self.first)?;
        (offset % 2 == 0)
            .then_some(usize::from(offset / 2))
            .filter(|&i| i < self.in_use.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_range() {
        let p = PortAllocator::new(20000, 39998).unwrap();
        assert_eq!(p.capacity(), 10_000);
    }

    #[test]
    fn odd_bounds_round_inwards() {
        let mut p = PortAllocator::new(20001, 20007).unwrap();
        assert_eq!(p.capacity(), 3);
        assert_eq!(p.allocate(), Some(20002));
        assert_eq!(p.allocate(), Some(20004));
        assert_eq!(p.allocate(), Some(20006));
        assert_eq!(p.allocate(), None);
        // 65535 is odd and 65534's RTCP port would be 65535: fine.
        let mut top = PortAllocator::new(65534, 65535).unwrap();
        assert_eq!(top.allocate(), Some(65534));
        assert!(PortAllocator::new(20001, 20001).is_err());
        assert!(PortAllocator::new(30000, 20000).is_err());
        assert!(PortAllocator::new(0, 0).is_err());
        assert!(PortAllocator::new(65535, 65535).is_err());
    }

    #[test]
    fn round_robin_and_release() {
        let mut p = PortAllocator::new(20000, 20006).unwrap();
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!((a, b), (20000, 20002));
        p.release(a);
        // Not reused immediately: the cursor moves on.
        assert_eq!(p.allocate(), Some(20004));
        assert_eq!(p.allocate(), Some(20006));
        assert_eq!(p.allocate(), Some(20000));
        assert_eq!(p.allocate(), None);
        assert_eq!(p.in_use(), 4);
        p.release(20003); // odd: ignored
        p.release(19998); // outside: ignored
        p.release(20002);
        p.release(20002); // twice: counted once
        assert_eq!(p.in_use(), 3);
        assert_eq!(p.allocate(), Some(20002));
    }
}
