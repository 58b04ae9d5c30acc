//! How [`SessionClaims`](super::SessionClaims) keeps its text: the string
//! claims back to back in one allocation, indexed with 16 bits, and which
//! optional claims are present, a bit each.

/// The parts of the claims' text, in order: string claims, then every
/// other claim as one JSON object.
#[derive(Clone, Copy)]
pub(super) enum Part {
    Sub,
    Sid,
    Azp,
    Sts,
    Pla,
    Fea,
    Extra,
}

impl Part {
    pub(super) const COUNT: usize = 7;

    /// The part's bit in `SessionClaims::present`, when it is optional.
    pub(super) fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Bits of `SessionClaims::present` for the claims that are not text
/// (the text parts take the low bits, by their [`Part`] number).
pub(super) struct Present;

impl Present {
    pub(super) const IAT: u16 = 1 << Part::COUNT;
    pub(super) const NBF: u16 = Self::IAT << 1;
    pub(super) const V: u16 = Self::IAT << 2;
    pub(super) const FVA: u16 = Self::IAT << 3;
}

/// Claims whose typed string claims (`sub`, `sid`, `azp`, `sts`, `pla` and
/// `fea`) together exceed 64 KiB, too long to index with 16 bits: never a
/// real token's (a session token travels in a cookie of at most 4 KiB, and
/// the layer refuses tokens over 8 KiB unless told otherwise). The other
/// claims, kept last, may take any length.
#[derive(Debug, thiserror::Error)]
#[error("the typed string claims exceed 64 KiB")]
pub(crate) struct ClaimsTooLong;

/// The parts' text back to back, where each ends, and the bits of the parts
/// present.
pub(super) fn pack(
    parts: [Option<&str>; Part::COUNT],
) -> Result<(Box<str>, [u16; Part::COUNT - 1], u16), ClaimsTooLong> {
    let mut text = String::with_capacity(parts.iter().flatten().map(|part| part.len()).sum());
    let mut ends = [0; Part::COUNT - 1];
    let mut present = 0;
    for (index, part) in parts.into_iter().enumerate() {
        if let Some(part) = part {
            text.push_str(part);
            present |= 1 << index;
        }
        if let Some(end) = ends.get_mut(index) {
            *end = u16::try_from(text.len()).map_err(|_| ClaimsTooLong)?;
        }
    }
    Ok((text.into_boxed_str(), ends, present))
}
