-- The operator's runtime switches (`warden switch`): they override warden.toml's defaults, so a restart
-- keeps them. `switch` is `feature:NAME` (a plugin feature) or `joins` (new joins open).
CREATE TABLE plugin_switches (
    plugin     TEXT    NOT NULL,
    switch     TEXT    NOT NULL,
    value      INTEGER NOT NULL CHECK (value IN (0, 1)),
    actor      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, switch)
) WITHOUT ROWID;
