//! The journal segment tables of the sqlite backend ([`segments::SegmentTables`]).

use super::SqliteStore;
use crate::storage::JournalRow;
use crate::storage::segments;
use anyhow::Result;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

impl segments::SegmentTables for SqliteStore {
    async fn checkpoint_ticks(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT game, room, tick FROM room_checkpoints").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("game"), r.get("room"), r.get("tick"))).collect())
    }

    async fn per_room_last_ticks(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT game, room, MAX(tick) AS tick FROM room_journal GROUP BY game, room").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("game"), r.get("room"), r.get("tick"))).collect())
    }

    async fn segments(&self, seqs: Option<&[i64]>) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = match seqs {
            None => sqlx::query("SELECT seq, data FROM room_journal_segments").fetch_all(&self.pool).await?,
            Some(seqs) => {
                let mut rows = Vec::new();
                for chunk in seqs.chunks(500) {
                    rows.extend(
                        with_seqs("SELECT seq, data FROM room_journal_segments WHERE seq IN (", chunk)
                            .build()
                            .fetch_all(&self.pool)
                            .await?,
                    );
                }
                rows
            }
        };
        Ok(rows.iter().map(|r| (r.get("seq"), r.get("data"))).collect())
    }

    async fn delete_segments(&self, seqs: &[i64]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        delete_segments(&mut tx, seqs).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn per_room_rows(&self, game: &str, room: &str, after_tick: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query("SELECT tick, data FROM room_journal WHERE game = ?1 AND room = ?2 AND tick > ?3")
            .bind(game)
            .bind(room)
            .bind(after_tick)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get("tick"), r.get("data"))).collect())
    }
}

/// Writes `rows` as segment `seq`.
pub(super) async fn insert_segment<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    seq: i64,
    rows: &[JournalRow],
) -> Result<()> {
    sqlx::query("INSERT INTO room_journal_segments (seq, data) VALUES (?1, ?2)")
        .bind(seq)
        .bind(segments::encode(rows))
        .execute(executor)
        .await?;
    Ok(())
}

/// Deletes segments by sequence number.
pub(super) async fn delete_segments(tx: &mut SqliteConnection, seqs: &[i64]) -> Result<()> {
    for chunk in seqs.chunks(1_000) {
        with_seqs("DELETE FROM room_journal_segments WHERE seq IN (", chunk).build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// `sql` followed by `seqs` as bound parameters and a closing parenthesis.
fn with_seqs<'a>(sql: &str, seqs: &[i64]) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let mut query = sqlx::QueryBuilder::new(sql);
    let mut list = query.separated(", ");
    for seq in seqs {
        list.push_bind(*seq);
    }
    query.push(")");
    query
}
