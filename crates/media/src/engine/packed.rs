//! Records that each carry a few bytes, the bytes end to end in one buffer: how a
//! shard's received audio travels to its clock ([`super::shard::Arrivals`]) and how a
//! tick's datagrams wait for the send after the lock ([`super::shard::Outbox`]). A
//! G.711 packet moves its 160 bytes, not a slot sized for the largest Opus frame, and
//! nothing is allocated once the two vectors have grown.

/// Heads `H`, each with its bytes in [`Packed::bytes`].
#[derive(Debug)]
pub(super) struct Packed<H> {
    heads: Vec<(H, usize, usize)>,
    bytes: Vec<u8>,
}

impl<H> Default for Packed<H> {
    fn default() -> Self {
        Self {
            heads: Vec::new(),
            bytes: Vec::new(),
        }
    }
}

impl<H> Packed<H> {
    /// Adds `head` with a copy of `bytes`.
    pub(super) fn push(&mut self, head: H, bytes: &[u8]) {
        self.heads.push((head, self.bytes.len(), bytes.len()));
        self.bytes.extend_from_slice(bytes);
    }

    /// Moves everything of `other` to the end of this, leaving it empty (its capacity
    /// kept).
    pub(super) fn append(&mut self, other: &mut Self) {
        let base = self.bytes.len();
        self.heads.extend(
            other
                .heads
                .drain(..)
                .map(|(head, start, len)| (head, start + base, len)),
        );
        self.bytes.append(&mut other.bytes);
    }

    /// Hands each head and its bytes to `each`, in order, and empties this.
    pub(super) fn drain_each(&mut self, mut each: impl FnMut(H, &[u8])) {
        let Self { heads, bytes } = self;
        for (head, start, len) in heads.drain(..) {
            each(head, bytes.get(start..start + len).unwrap_or_default());
        }
        bytes.clear();
    }

    /// Each head and its bytes, in order.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&H, &[u8])> {
        self.heads.iter().map(|(head, start, len)| {
            (
                head,
                self.bytes.get(*start..start + len).unwrap_or_default(),
            )
        })
    }

    /// Records held.
    pub(super) fn len(&self) -> usize {
        self.heads.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Empties it, keeping the capacity.
    pub(super) fn clear(&mut self) {
        self.heads.clear();
        self.bytes.clear();
    }
}
