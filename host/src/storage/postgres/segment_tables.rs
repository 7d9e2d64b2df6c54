//! The journal segment tables of the postgres backend ([`segments::SegmentTables`]).

use super::PgStore;
use crate::storage::segments;
use anyhow::Result;
use sqlx::Row;

impl segments::SegmentTables for PgStore {
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
                sqlx::query("SELECT seq, data FROM room_journal_segments WHERE seq = ANY($1)").bind(seqs).fetch_all(&self.pool).await?
            }
        };
        Ok(rows.iter().map(|r| (r.get("seq"), r.get("data"))).collect())
    }

    async fn delete_segments(&self, seqs: &[i64]) -> Result<()> {
        sqlx::query("DELETE FROM room_journal_segments WHERE seq = ANY($1)").bind(seqs).execute(&self.pool).await?;
        Ok(())
    }

    async fn per_room_rows(&self, game: &str, room: &str, after_tick: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query("SELECT tick, data FROM room_journal WHERE game = $1 AND room = $2 AND tick > $3")
            .bind(game)
            .bind(room)
            .bind(after_tick)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get("tick"), r.get("data"))).collect())
    }
}
