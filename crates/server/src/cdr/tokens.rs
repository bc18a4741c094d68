//! The admin API's tokens in the bridge's durable file, as the store sees them: a name,
//! a role and scope as text (what they mean is `crate::tokens`'s business), the SHA-256
//! of the secret, when it was made and whether it was revoked.

use std::time::SystemTime;

use rusqlite::OptionalExtension;

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
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO api_tokens (name, role, scope, hash, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                name,
                role,
                scope,
                hash.as_slice(),
                Timestamp::from_system_time(at).unix_millis()
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The token whose secret hashes to `hash`, revoked or not.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<StoredToken>, CdrError> {
        let conn = self.lock()?;
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = ?1");
        Ok(conn
            .query_row(&sql, [hash.as_slice()], token_from_row)
            .optional()?)
    }

    /// The token `id`, revoked or not.
    pub fn token(&self, id: i64) -> Result<Option<StoredToken>, CdrError> {
        let conn = self.lock()?;
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1");
        Ok(conn.query_row(&sql, [id], token_from_row).optional()?)
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<StoredToken>, CdrError> {
        let conn = self.lock()?;
        let mut statement =
            conn.prepare(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id"))?;
        let rows = statement.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes token `id` and commits; `false` if there is no such token.
    pub fn revoke_token(&self, id: i64) -> Result<bool, CdrError> {
        let conn = self.lock()?;
        let changed = conn.execute("UPDATE api_tokens SET revoked = 1 WHERE id = ?1", [id])?;
        Ok(changed == 1)
    }
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        scope: r.get(3)?,
        created: Timestamp::from_unix_millis(r.get(4)?),
        revoked: r.get::<_, i64>(5)? != 0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_are_found_by_hash_listed_and_revoked() {
        let store = CdrStore::open(":memory:").unwrap();
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
