//! One OpenID Connect issuer as the app configures it: where its keys come
//! from and the rules its tokens must meet; the presets that encode each
//! provider's quirks.

use std::time::Duration;

use crate::{config::ProfileClaims, subject_key::is_issuer_url, token::KeySource};

/// Which tokens of an issuer are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenUse {
    /// Access tokens typed as RFC 9068 says (`typ: at+jwt` or
    /// `application/at+jwt`); anything else is refused. The generic default.
    Rfc9068AccessToken,
    /// Access tokens of a provider that types them `JWT` or not at all
    /// (Auth0's default profile, Keycloak, Okta, Entra, Cognito). A token
    /// typed as something else, or carrying an ID token's `nonce`,
    /// `at_hash` or `c_hash`, is refused.
    AccessToken,
    /// ID tokens, where the provider's ID token is what an API receives
    /// (Google, Firebase). A token typed `at+jwt` is refused.
    IdToken,
}

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone)]
pub(crate) enum IssuerKeys {
    /// The `jwks_uri` of `<issuer>/.well-known/openid-configuration`.
    Discovery,
    /// A JWKS document at a URL the provider documents.
    Jwks(String),
    /// Keys given directly: nothing is fetched.
    Given(KeySource),
}

/// An OpenID Connect issuer whose tokens the layer accepts beside (or
/// instead of) Clerk's: its keys, found by discovery or given, and the
/// rules its tokens must meet.
///
/// Rows of its users are keyed by (issuer, subject): the same subject at
/// two issuers is two people. The presets encode what each provider does
/// differently; [`Issuer::new`] is the generic form.
///
/// ```
/// use ensure_user::oidc::Issuer;
///
/// // Any provider: discovery, RFC 9068 access tokens for this API.
/// let generic = Issuer::new("https://id.example.com").with_audience("https://api.example.com");
/// // Auth0: `https://<tenant>/` with its trailing slash, and a custom domain.
/// let auth0 = Issuer::auth0("example.eu.auth0.com")
///     .with_audience("https://api.example.com")
///     .with_alias("https://login.example.com/");
/// # let _ = (generic, auth0);
/// ```
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) keys: IssuerKeys,
    pub(crate) audiences: Vec<String>,
    pub(crate) audience_claim: String,
    pub(crate) token_use: TokenUse,
    pub(crate) required_claims: Vec<(String, String)>,
    pub(crate) subject_claim: String,
    pub(crate) machine_subject_suffix: Option<String>,
    pub(crate) clock_skew: Option<Duration>,
    pub(crate) max_lifetime: Duration,
    pub(crate) profile_claims: ProfileClaims,
    pub(crate) subject_alone: bool,
}

impl Issuer {
    /// Tokens whose `iss` is exactly `issuer` (an `https://` URL; `http://`
    /// only on loopback), verified with the keys at the `jwks_uri` of its
    /// discovery document, `<issuer>/.well-known/openid-configuration`,
    /// whose `issuer` must equal `issuer` exactly.
    ///
    /// Defaults: RFC 9068 access tokens, any audience (set one with
    /// [`with_audience`](Self::with_audience): without one, any token of
    /// the issuer is accepted, whichever API it was issued for), the
    /// subject in `sub`, a lifetime of at most 24 hours, the layer's clock
    /// skew, and the profile in `email`, `given_name`, `family_name` and
    /// `picture`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            aliases: Vec::new(),
            keys: IssuerKeys::Discovery,
            audiences: Vec::new(),
            audience_claim: "aud".to_owned(),
            token_use: TokenUse::Rfc9068AccessToken,
            required_claims: Vec::new(),
            subject_claim: "sub".to_owned(),
            machine_subject_suffix: None,
            clock_skew: None,
            max_lifetime: Duration::from_secs(24 * 3600),
            profile_claims: ProfileClaims {
                email: "email".into(),
                first_name: "given_name".into(),
                last_name: "family_name".into(),
                image_url: "picture".into(),
            },
            subject_alone: false,
        }
    }

    /// Auth0, for an API: `https://<domain>/` (Auth0's `iss` ends with a
    /// slash), keys by discovery, access tokens of either profile (its
    /// default one types them `JWT`, its RFC 9068 one `at+jwt`), and
    /// client-credentials tokens (subject `…@clients`) refused as not a
    /// user's. Set the API identifier with [`with_audience`](Self::with_audience),
    /// and a custom domain with [`with_alias`](Self::with_alias).
    pub fn auth0(domain: &str) -> Self {
        let domain = bare_host(domain);
        Self::new(format!("https://{domain}/"))
            .with_token_use(TokenUse::AccessToken)
            .refusing_subjects_ending_with("@clients")
    }

    /// Keycloak: the realm's URL as issuer
    /// (`https://<host>/realms/<realm>`), access tokens, which Keycloak
    /// types `Bearer` in their `typ` claim (an ID token says `ID`). Its
    /// audience is `account` or absent unless an audience mapper adds the
    /// API's: set it with [`with_audience`](Self::with_audience).
    pub fn keycloak(realm_url: impl Into<String>) -> Self {
        Self::new(realm_url)
            .with_token_use(TokenUse::AccessToken)
            .with_required_claim("typ", "Bearer")
    }

    /// Supabase Auth of a project (`https://<ref>.supabase.co`): the issuer
    /// is `<project>/auth/v1`, the audience `authenticated`, and the role
    /// claim `authenticated` (the project's `anon` and `service_role` keys
    /// are JWTs too, and are refused). ES256 and RS256 keys alike.
    pub fn supabase(project_url: &str) -> Self {
        let project = project_url.trim_end_matches('/');
        Self::new(format!("{project}/auth/v1"))
            .with_token_use(TokenUse::AccessToken)
            .with_audience("authenticated")
            .with_required_claim("role", "authenticated")
    }

    /// An Amazon Cognito user pool's access tokens: the issuer is
    /// `https://cognito-idp.<region>.amazonaws.com/<pool id>`; access tokens
    /// carry no `aud`, so the app client id is checked in `client_id`
    /// (set it with [`with_audience`](Self::with_audience)), and `token_use`
    /// must be `access`.
    pub fn cognito(region: &str, user_pool_id: &str) -> Self {
        Self::new(format!(
            "https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        ))
        .with_token_use(TokenUse::AccessToken)
        .with_audience_claim("client_id")
        .with_required_claim("token_use", "access")
    }

    /// Firebase Authentication's ID tokens for a project: issuer
    /// `https://securetoken.google.com/<project>`, audience the project id,
    /// keys from Google's JWKS form of the certificates Firebase publishes
    /// (the same keys as its X.509 endpoint).
    pub fn firebase(project_id: &str) -> Self {
        Self::new(format!("https://securetoken.google.com/{project_id}"))
            .with_jwks_url(
                "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
            )
            .with_token_use(TokenUse::IdToken)
            .with_audience(project_id)
    }

    /// Microsoft Entra ID (v2.0 tokens) of a tenant: issuer
    /// `https://login.microsoftonline.com/<tenant id>/v2.0`, the user keyed
    /// by `oid` (its `sub` differs per app), keys published without `alg`
    /// (each bound by its type), lifetimes up to 28 hours (continuous access
    /// evaluation). Set the API's client id with [`with_audience`](Self::with_audience).
    pub fn entra(tenant_id: &str) -> Self {
        Self::new(format!(
            "https://login.microsoftonline.com/{tenant_id}/v2.0"
        ))
        .with_token_use(TokenUse::AccessToken)
        .with_subject_claim("oid")
        .with_max_lifetime(Duration::from_secs(28 * 3600))
    }

    /// Okta, a custom authorization server (`https://<org>/oauth2/default`
    /// or `/oauth2/<id>`; tokens of the org server are not an API's to
    /// accept): the user keyed by `uid` (an access token's `sub` is the
    /// login, which can change), so client-credentials tokens, which have
    /// no `uid`, carry no user. Set the audience (`api://default`) with
    /// [`with_audience`](Self::with_audience).
    pub fn okta(authorization_server: impl Into<String>) -> Self {
        Self::new(authorization_server)
            .with_token_use(TokenUse::AccessToken)
            .with_subject_claim("uid")
    }

    /// Sign in with Google's ID tokens: issuer `https://accounts.google.com`,
    /// which Google also writes `accounts.google.com`. Set the app's OAuth
    /// client id with [`with_audience`](Self::with_audience).
    pub fn google() -> Self {
        Self::new("https://accounts.google.com")
            .with_alias("accounts.google.com")
            .with_token_use(TokenUse::IdToken)
    }

    /// Networkless: the keys are given (a JWKS document, see
    /// [`KeySource::jwks_document`], or an RSA PEM key, see
    /// [`KeySource::pem`]), and neither discovery nor a JWKS is fetched.
    pub fn with_keys(mut self, keys: KeySource) -> Self {
        self.keys = IssuerKeys::Given(keys);
        self
    }

    /// Keys from this JWKS URL instead of the discovery document's.
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.keys = IssuerKeys::Jwks(url.into());
        self
    }

    /// An audience the token must name (in `aud`, a string or an array, or
    /// the claim [`with_audience_claim`](Self::with_audience_claim) names);
    /// several calls accept any of them.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The claim the audience is read from. Default `aud`.
    pub fn with_audience_claim(mut self, claim: impl Into<String>) -> Self {
        self.audience_claim = claim.into();
        self
    }

    /// Another spelling of the issuer in `iss`: an Auth0 custom domain, or
    /// Google's `accounts.google.com`. Rows stay keyed by the issuer given
    /// first, so both spellings reach the same rows.
    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// Which tokens are accepted. Default [`TokenUse::Rfc9068AccessToken`].
    pub fn with_token_use(mut self, token_use: TokenUse) -> Self {
        self.token_use = token_use;
        self
    }

    /// A claim the token must hold with exactly this string value, such as
    /// Cognito's `token_use: access`.
    pub fn with_required_claim(
        mut self,
        claim: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.required_claims.push((claim.into(), value.into()));
        self
    }

    /// The claim that holds the user's stable id. Default `sub`; Entra's
    /// is `oid`, Okta's `uid`.
    pub fn with_subject_claim(mut self, claim: impl Into<String>) -> Self {
        self.subject_claim = claim.into();
        self
    }

    /// Refuses tokens whose subject ends with `suffix` as not a user's
    /// (`401 token_type_mismatch`): Auth0's client-credentials tokens end
    /// with `@clients`.
    pub fn refusing_subjects_ending_with(mut self, suffix: impl Into<String>) -> Self {
        self.machine_subject_suffix = Some(suffix.into());
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat`. Default: the
    /// layer's ([`Config::with_clock_skew`](crate::Config::with_clock_skew)).
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = Some(skew);
        self
    }

    /// The longest lifetime (`exp` − `iat`) accepted. Default 24 hours.
    pub fn with_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// The claims a new user's profile is read from.
    pub fn with_profile_claims(mut self, claims: ProfileClaims) -> Self {
        self.profile_claims = claims;
        self
    }

    /// Keys this issuer's users by their subject alone, not
    /// `<issuer>#<subject>`: for an app's own table whose column already
    /// holds one issuer's subjects (an `auth0_id` column of `auth0|…`
    /// values). Only for the one issuer of that table: two issuers keyed
    /// this way could share a subject, and Clerk ids are `user_…`.
    pub fn keyed_by_subject_alone(mut self) -> Self {
        self.subject_alone = true;
        self
    }

    /// The key of `subject` in the users table: `<issuer>#<subject>`
    /// ([`user_key`](super::user_key)), or the subject alone (see
    /// [`keyed_by_subject_alone`](Self::keyed_by_subject_alone)).
    pub fn user_key(&self, subject: &str) -> String {
        if self.subject_alone {
            subject.to_owned()
        } else {
            crate::subject_key::of_issuer(&self.issuer, subject)
        }
    }

    /// The issuer, as tokens state it and rows are keyed by.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether `iss` names this issuer, in its own spelling or an alias.
    pub(crate) fn names(&self, iss: &str) -> bool {
        self.issuer == iss || self.aliases.iter().any(|alias| alias == iss)
    }

    /// Why this issuer cannot be used, if it cannot: a URL that is not
    /// `https://` (or `http://` on loopback), or has a fragment.
    pub(crate) fn problem(&self) -> Option<String> {
        let url = &self.issuer;
        if !is_issuer_url(url) {
            return Some(format!(
                "the OpenID Connect issuer `{url}` is not an http(s) URL without a fragment"
            ));
        }
        if url.starts_with("http://") && !is_loopback(url) {
            return Some(format!(
                "the OpenID Connect issuer `{url}` is not https://; plain http is accepted on \
                 loopback (127.0.0.1, [::1], localhost) only"
            ));
        }
        if let IssuerKeys::Jwks(jwks) = &self.keys
            && !(jwks.starts_with("https://") || jwks.starts_with("http://") && is_loopback(jwks))
        {
            return Some(format!(
                "the JWKS URL `{jwks}` of the OpenID Connect issuer `{url}` is not https:// \
                 (plain http is accepted on loopback only)"
            ));
        }
        None
    }
}

/// Whether an `http://` URL's host is a loopback one.
pub(crate) fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A domain with any scheme and trailing slash taken off.
fn bare_host(domain: &str) -> &str {
    let domain = domain
        .strip_prefix("https://")
        .or_else(|| domain.strip_prefix("http://"))
        .unwrap_or(domain);
    domain.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_spell_their_issuers_as_their_tokens_do() {
        assert_eq!(
            Issuer::auth0("https://t.eu.auth0.com/").issuer(),
            "https://t.eu.auth0.com/"
        );
        assert_eq!(
            Issuer::supabase("https://abc.supabase.co/").issuer(),
            "https://abc.supabase.co/auth/v1"
        );
        assert_eq!(
            Issuer::cognito("eu-west-1", "eu-west-1_Ab12").issuer(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12"
        );
        assert_eq!(
            Issuer::entra("72f988bf-86f1-41af-91ab-2d7cd011db47").issuer(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
        );
        let google = Issuer::google();
        assert!(google.names("accounts.google.com") && google.names("https://accounts.google.com"));
        assert!(!google.names("https://accounts.google.com/"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "https://id.example.com",
            "http://127.0.0.1:8080",
            "http://localhost/realms/a",
            "http://[::1]:9/x",
        ] {
            assert_eq!(Issuer::new(ok).problem(), None, "{ok}");
        }
        for bad in [
            "http://id.example.com",
            "http://127.0.0.1.example.com",
            "id.example.com",
            "https://id.example.com/#x",
        ] {
            assert!(Issuer::new(bad).problem().is_some(), "{bad}");
        }
    }
}
