//! The admin API's tokens in the bridge's durable file, as the store sees them: a name,
//! a role and scope as text (what they mean is `crate::tokens`'s business), the SHA-256
//! of the secret, when it was made and whether it was revoked.

use std::time::SystemTime;

use super::backend::Row;
use super::{CdrError, CdrStore, Timestamp};

/// One stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub scope: Option<String>,
    pub created: Timestamp,
    pub revoked: bool,
}

const COLUMNS: &str = "id, name, role, scope, created_ms, revoked";

impl CdrStore {
    /// Keeps a new token and commits; returns its id.
    pub fn insert_token(
        &self,
        name: &str,
        role: &str,
        scope: Option<&str>,
        hash: &[u8; 32],
        at: SystemTime,
    ) -> Result<i64, CdrError> {
        let created_ms = Timestamp::from_system_time(at).unix_millis();
        let rows = self.lock()?.run(|db| {
            db.query(
                "INSERT INTO api_tokens (name, role, scope, hash, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                &[
                    name.into(),
                    role.into(),
                    scope.into(),
                    hash.as_slice().into(),
                    created_ms.into(),
                ],
            )
        })?;
        match rows.first() {
            Some(row) => row.int(0),
            None => Err(CdrError::Database(
                "a new token's id was not returned".into(),
            )),
        }
    }

    /// The token whose secret hashes to `hash`, revoked or not.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<StoredToken>, CdrError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = ?1");
        let rows = self
            .lock()?
            .run(|db| db.query(&sql, &[hash.as_slice().into()]))?;
        rows.first().map(token_from_row).transpose()
    }

    /// The token `id`, revoked or not.
    pub fn token(&self, id: i64) -> Result<Option<StoredToken>, CdrError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1");
        let rows = self.lock()?.run(|db| db.query(&sql, &[id.into()]))?;
        rows.first().map(token_from_row).transpose()
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<StoredToken>, CdrError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id");
        let rows = self.lock()?.run(|db| db.query(&sql, &[]))?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes token `id` and commits; `false` if there is no such token.
    pub fn revoke_token(&self, id: i64) -> Result<bool, CdrError> {
        let changed = self.lock()?.run(|db| {
            db.execute(
                "UPDATE api_tokens SET revoked = 1 WHERE id = ?1",
                &[id.into()],
            )
        })?;
        Ok(changed == 1)
    }
}

fn token_from_row(r: &Row) -> Result<StoredToken, CdrError> {
    Ok(StoredToken {
        id: r.int(0)?,
        name: r.text(1)?.to_owned(),
        role: r.text(2)?.to_owned(),
        scope: r.opt_text(3)?.map(str::to_owned),
        created: Timestamp::from_unix_millis(r.int(4)?),
        revoked: r.int(5)? != 0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_are_found_by_hash_listed_and_revoked() {
        super::super::tests::on_both_backends(tokens_are_found_on);
    }

    fn tokens_are_found_on(store: &CdrStore) {
        let now = SystemTime::now();
        let a = store
            .insert_token("ops", "operator", Some("Telco A"), &[1; 32], now)
            .unwrap();
        let b = store
            .insert_token("dash", "read-only", None, &[2; 32], now)
            .unwrap();
        assert_eq!(store.token_by_hash(&[1; 32]).unwrap().unwrap().id, a);
        assert_eq!(store.token_by_hash(&[3; 32]).unwrap(), None);
        // A hash is unique: the same secret twice is refused.
        assert!(
            store
                .insert_token("again", "admin", None, &[1; 32], now)
                .is_err()
        );
        assert!(store.revoke_token(b).unwrap());
        assert!(!store.revoke_token(99).unwrap());
        let listed = store.tokens().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].scope.as_deref(), Some("Telco A"));
        assert!(!listed[0].revoked);
        assert!(listed[1].revoked);
        assert!(store.token(b).unwrap().unwrap().revoked);
        // The role is checked by the schema too.
        assert!(
            store
                .insert_token("x", "root", None, &[4; 32], now)
                .is_err()
        );
    }
}
