//! The JWS signature algorithms the crate verifies, and sets of them.

/// A JWS signature algorithm the crate verifies. `none` and the symmetric
/// (`HS*`) algorithms are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256, the signature as fixed-size `r || s`.
    Es256,
    /// ECDSA on P-384 with SHA-384, the signature as fixed-size `r || s`.
    Es384,
    /// EdDSA with Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, in the order of [`Algorithm`]'s variants.
    pub(crate) const ALL: [Algorithm; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The algorithm of a JWS `alg` name (case-sensitive, as RFC 7515
    /// says); `None` for `none`, the `HS*` algorithms and any other name.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The JWS `alg` name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// This algorithm's bit in [`Algorithms`].
    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of algorithms (a small bitset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Algorithms(u16);

impl Algorithms {
    /// The set of `alg` alone.
    pub(crate) const fn only(alg: Algorithm) -> Self {
        Self(alg.bit())
    }

    /// Every algorithm in [`Algorithm::ALL`].
    pub(crate) const fn all() -> Self {
        let mut set = Self(0);
        let mut i = 0;
        while i < Algorithm::ALL.len() {
            set = set.with(Algorithm::ALL[i]);
            i += 1;
        }
        set
    }

    /// This set and `alg`.
    pub(crate) const fn with(self, alg: Algorithm) -> Self {
        Self(self.0 | alg.bit())
    }

    /// Whether `alg` is in this set.
    pub(crate) const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }
}

// Each algorithm in `ALL` once, each with its own bit of the set.
const _: () = assert!(Algorithms::all().0 == (1 << Algorithm::ALL.len()) - 1);
