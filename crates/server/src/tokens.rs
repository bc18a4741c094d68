//! The admin API's tokens: who a token speaks for (a [`Principal`]: a role and, for
//! some roles, the provider or tenant it is bound to), and making, listing, revoking and
//! recognising tokens kept in the bridge's durable file. Used by the API and the
//! `dialbridge token` command alike.
//!
//! A token is `dbt_` and 64 hex digits: 256 random bits, so its SHA-256 is all that is
//! kept and a presented token is looked up by its hash (a guess learns nothing from
//! the time a look-up takes: it would have to know the hash's prefix first). The
//! configured `[admin] token` is not stored: it is the bootstrap admin credential.

use std::fmt;
use std::time::SystemTime;

use dialbridge_router::Router;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::Error;
use crate::cdr::{CdrStore, StoredToken, Timestamp};

/// What a token's holder may touch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Everything.
    Admin,
    /// The numbers of this provider (Operator Connect's view): list them, set their
    /// capacity, assign them to bridges.
    Operator { provider: String },
    /// This tenant's bridges, organisers, meetings, call records and dashboard.
    TenantAdmin { tenant: String },
    /// The metrics and the dashboard; nothing that changes anything.
    ReadOnly,
}

/// A role, as tokens name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Operator,
    TenantAdmin,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Operator,
        Role::TenantAdmin,
        Role::ReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::TenantAdmin => "tenant-admin",
            Role::ReadOnly => "read-only",
        }
    }

    pub fn parse(text: &str) -> Result<Role, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                Error::Token(format!(
                    "unknown role {text:?}: admin, operator, tenant-admin or read-only"
                ))
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Principal {
    /// The principal of `role` bound to `provider` (operators) or `tenant` (tenant
    /// admins); a scope the role does not take, or lacks, is refused.
    pub fn new(role: Role, provider: Option<&str>, tenant: Option<&str>) -> Result<Self, Error> {
        let refuse = |m: &str| Err(Error::Token(m.to_owned()));
        let name = |what: &str, v: &str| -> Result<String, Error> {
            let v = v.trim();
            if v.is_empty() || v.len() > MAX_NAME || v.chars().any(char::is_control) {
                return Err(Error::Token(format!(
                    "{what} must be 1 to {MAX_NAME} printable characters"
                )));
            }
            Ok(v.to_owned())
        };
        match (role, provider, tenant) {
            (Role::Admin, None, None) => Ok(Principal::Admin),
            (Role::ReadOnly, None, None) => Ok(Principal::ReadOnly),
            (Role::Operator, Some(p), None) => Ok(Principal::Operator {
                provider: name("provider", p)?,
            }),
            (Role::TenantAdmin, None, Some(t)) => Ok(Principal::TenantAdmin {
                tenant: name("tenant", t)?,
            }),
            (Role::Operator, _, _) => {
                refuse("an operator token is bound to a provider, and only to it")
            }
            (Role::TenantAdmin, _, _) => {
                refuse("a tenant-admin token is bound to a tenant, and only to it")
            }
            (Role::Admin | Role::ReadOnly, _, _) => {
                refuse("admin and read-only tokens are bound to no provider or tenant")
            }
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Principal::Admin => Role::Admin,
            Principal::Operator { .. } => Role::Operator,
            Principal::TenantAdmin { .. } => Role::TenantAdmin,
            Principal::ReadOnly => Role::ReadOnly,
        }
    }

    /// The provider or tenant it is bound to.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Principal::Operator { provider } => Some(provider),
            Principal::TenantAdmin { tenant } => Some(tenant),
            Principal::Admin | Principal::ReadOnly => None,
        }
    }

    /// Whether it sees everything of `tenant`: admins, and that tenant's admins.
    pub fn sees_tenant(&self, tenant: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::TenantAdmin { tenant: own } => own == tenant,
            _ => false,
        }
    }

    /// Whether it sees a number of `provider` assigned to a bridge of `tenant`:
    /// admins all, operators their provider's, tenant admins those on their bridges.
    pub fn sees_number(&self, provider: &str, tenant: Option<&str>) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Operator { provider: own } => own == provider,
            Principal::TenantAdmin { tenant: own } => tenant == Some(own.as_str()),
            Principal::ReadOnly => false,
        }
    }

    /// Whether the provider or tenant it is bound to is in `router`'s plan (a typo
    /// would make a token that sees nothing).
    pub fn check_scope(&self, router: &Router) -> Result<(), Error> {
        match self {
            Principal::Admin | Principal::ReadOnly => Ok(()),
            Principal::TenantAdmin { tenant } => {
                if router.bridges().iter().any(|b| &*b.tenant == tenant) {
                    Ok(())
                } else {
                    Err(Error::Token(format!(
                        "no bridge of tenant {tenant:?} in the plan"
                    )))
                }
            }
            Principal::Operator { provider } => {
                let numbers = router
                    .numbers()
                    .into_iter()
                    .filter_map(|n| router.number(n))
                    .any(|n| n.provider.to_string() == *provider);
                let trunks = router.snapshot().trunks.iter().any(|t| {
                    router
                        .trunk_by_name(&t.name)
                        .and_then(|id| router.trunk(id))
                        .and_then(|t| t.provider)
                        .is_some_and(|p| p.to_string() == *provider)
                });
                if numbers || trunks {
                    Ok(())
                } else {
                    Err(Error::Token(format!(
                        "no trunk or number of provider {provider:?} in the plan"
                    )))
                }
            }
        }
    }
}

/// The longest token name, tenant or provider.
pub const MAX_NAME: usize = 64;
/// What every token starts with, so a leaked one is recognisable (secret scanners).
pub const PREFIX: &str = "dbt_";

/// A token as the list shows it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The provider (operator) or tenant (tenant-admin) it is bound to.
    pub scope: Option<String>,
    pub created: Timestamp,
    pub revoked: bool,
}

/// A new token: its view, and the secret, shown this once.
pub struct NewToken {
    pub view: TokenView,
    pub secret: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("view", &self.view)
            .field("secret", &"***")
            .finish()
    }
}

/// Makes a token called `name` for `principal`, kept (hashed) in `store`.
pub fn create(store: &CdrStore, name: &str, principal: &Principal) -> Result<NewToken, Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::Token(format!(
            "a token's name must be 1 to {MAX_NAME} printable characters"
        )));
    }
    let secret = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let at = SystemTime::now();
    let role = principal.role();
    let id = store.insert_token(name, role.as_str(), principal.scope(), &hash(&secret), at)?;
    let view = TokenView {
        id,
        name: name.to_owned(),
        role,
        scope: principal.scope().map(str::to_owned),
        created: Timestamp::from_system_time(at),
        revoked: false,
    };
    Ok(NewToken { view, secret })
}

/// Every token, oldest first.
pub fn list(store: &CdrStore) -> Result<Vec<TokenView>, Error> {
    Ok(store.tokens()?.into_iter().filter_map(view).collect())
}

/// Revokes token `id`; it is refused from the next request on.
pub fn revoke(store: &CdrStore, id: i64) -> Result<TokenView, Error> {
    if !store.revoke_token(id)? {
        return Err(Error::Token(format!("no token {id}")));
    }
    store
        .token(id)?
        .and_then(view)
        .ok_or_else(|| Error::Token(format!("no token {id}")))
}

/// Who `presented` speaks for, with the token's id: `None` for a token that was never
/// made, was revoked, or does not look like one.
pub fn recognise(store: &CdrStore, presented: &str) -> Result<Option<(i64, Principal)>, Error> {
    if !presented.starts_with(PREFIX) || presented.len() != PREFIX.len() + 64 {
        return Ok(None);
    }
    Ok(store
        .token_by_hash(&hash(presented))?
        .filter(|t| !t.revoked)
        .and_then(|t| principal(&t).map(|p| (t.id, p))))
}

/// Whether token `id` is still good (a session's token may be revoked under it).
pub fn active(store: &CdrStore, id: i64) -> Result<bool, Error> {
    Ok(store.token(id)?.is_some_and(|t| !t.revoked))
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn principal(t: &StoredToken) -> Option<Principal> {
    let role = Role::parse(&t.role).ok()?;
    let scope = t.scope.as_deref();
    let result = match role {
        Role::Operator => Principal::new(role, scope, None),
        Role::TenantAdmin => Principal::new(role, None, scope),
        Role::Admin | Role::ReadOnly => Principal::new(role, scope, None),
    };
    // Only this module writes rows, so a row it cannot read was edited by hand.
    result
        .inspect_err(|e| tracing::warn!(token = t.id, error = %e, "unreadable token row ignored"))
        .ok()
}

fn view(t: StoredToken) -> Option<TokenView> {
    let principal = principal(&t)?;
    Some(TokenView {
        id: t.id,
        name: t.name,
        role: principal.role(),
        scope: principal.scope().map(str::to_owned),
        created: t.created,
        revoked: t.revoked,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn demo_router() -> Router {
        let config = crate::config::Config::demo().unwrap();
        Router::new(crate::plan_from(&config).unwrap())
    }

    #[test]
    fn a_made_token_is_recognised_until_revoked_and_only_its_hash_is_kept() {
        crate::cdr::tests::on_both_backends(made_token_is_recognised_on);
    }

    fn made_token_is_recognised_on(store: &CdrStore) {
        let contoso = Principal::TenantAdmin {
            tenant: "contoso".into(),
        };
        let made = create(store, "contoso ops", &contoso).unwrap();
        assert!(made.secret.starts_with("dbt_") && made.secret.len() == 68);
        assert!(!format!("{made:?}").contains(&made.secret));
        let (id, who) = recognise(store, &made.secret).unwrap().unwrap();
        assert_eq!((id, &who), (made.view.id, &contoso));
        // One digit off, or not a token at all.
        let mut wrong = made.secret.clone();
        wrong.replace_range(67.., if made.secret.ends_with('0') { "1" } else { "0" });
        assert_eq!(recognise(store, &wrong).unwrap(), None);
        assert_eq!(recognise(store, "demo-admin-token").unwrap(), None);
        let kept = store.tokens().unwrap();
        assert_eq!(kept[0].scope.as_deref(), Some("contoso"));
        assert!(active(store, id).unwrap());
        let revoked = revoke(store, id).unwrap();
        assert!(revoked.revoked);
        assert_eq!(recognise(store, &made.secret).unwrap(), None);
        assert!(!active(store, id).unwrap());
        assert!(revoke(store, 42).is_err());
        assert_eq!(list(store).unwrap().len(), 1);
    }

    #[test]
    fn each_role_takes_exactly_its_scope() {
        use Role::*;
        assert_eq!(Principal::new(Admin, None, None).unwrap(), Principal::Admin);
        assert!(Principal::new(Admin, None, Some("contoso")).is_err());
        assert!(Principal::new(ReadOnly, Some("Telco A"), None).is_err());
        assert!(Principal::new(Operator, None, None).is_err());
        assert!(Principal::new(Operator, Some("Telco A"), Some("contoso")).is_err());
        assert!(Principal::new(TenantAdmin, Some("Telco A"), None).is_err());
        assert!(Principal::new(TenantAdmin, None, Some(" ")).is_err());
        assert_eq!(
            Principal::new(Operator, Some("Telco A"), None).unwrap(),
            Principal::Operator {
                provider: "Telco A".into()
            }
        );
        assert!(Role::parse("root").is_err());
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
    }

    #[test]
    fn scopes_must_name_what_the_plan_has() {
        let router = demo_router();
        let ok = |p: Principal| p.check_scope(&router).is_ok();
        assert!(ok(Principal::TenantAdmin {
            tenant: "fabrikam".into()
        }));
        assert!(!ok(Principal::TenantAdmin {
            tenant: "fabrikan".into()
        }));
        assert!(ok(Principal::Operator {
            provider: "Telco B".into()
        }));
        assert!(!ok(Principal::Operator {
            provider: "Telco C".into()
        }));
        assert!(ok(Principal::ReadOnly));
    }

    #[test]
    fn who_sees_what() {
        let contoso = Principal::TenantAdmin {
            tenant: "contoso".into(),
        };
        let telco_a = Principal::Operator {
            provider: "Telco A".into(),
        };
        assert!(contoso.sees_tenant("contoso") && !contoso.sees_tenant("fabrikam"));
        assert!(!telco_a.sees_tenant("contoso") && !Principal::ReadOnly.sees_tenant("contoso"));
        assert!(Principal::Admin.sees_tenant("fabrikam"));
        assert!(telco_a.sees_number("Telco A", Some("fabrikam")));
        assert!(!telco_a.sees_number("Telco B", Some("contoso")));
        assert!(contoso.sees_number("Telco B", Some("contoso")));
        assert!(!contoso.sees_number("Microsoft", None));
        assert!(!Principal::ReadOnly.sees_number("Microsoft", None));
    }
}
