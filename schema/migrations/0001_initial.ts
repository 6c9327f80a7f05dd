import { sql, type Migration } from 'kysely'
import { identifier } from '../db.ts'
import { partitionSql } from '../partitions.ts'
import { hasTimescale, samplesStorageSql } from '../timescale.ts'

export interface SchemaNames {
  schema: string
  role: string
}

/** docs/tables.md §2–§4: every table of the contract, the analyst role and the first monthly partitions. */
export function initial({ schema, role }: SchemaNames): Migration {
  identifier(schema)
  identifier(role)
  const t = (table: string) => sql.id(schema, table)
  return {
    async up(db) {
      await sql`create schema if not exists ${sql.id(schema)}`.execute(db)

      // roles are cluster-global: another database's migration may create it at the same moment
      await sql
        .raw(
          `do $$ begin
          if not exists (select 1 from pg_roles where rolname = '${role}') then create role "${role}" nologin; end if;
        exception when duplicate_object or unique_violation then null;
        end $$`,
        )
        .execute(db)
      await sql`grant usage on schema ${sql.id(schema)} to ${sql.id(role)}`.execute(db)
      // tables created later in this schema (partitions included) are readable too
      await sql`alter default privileges in schema ${sql.id(schema)} grant select on tables to ${sql.id(role)}`.execute(db)

      const timescale = await hasTimescale(db)
      for (const statement of samplesStorageSql({ schema, timescale })) await sql.raw(statement).execute(db)
      if (!timescale) {
        const now = new Date()
        for (let k = -1; k <= 2; k++) {
          await sql.raw(partitionSql(schema, new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + k, 1)))).execute(db)
        }
      }

      await sql`create table ${t('hrv_daily')} (
        user_id text not null,
        day date not null,
        metric text not null,
        value_ms double precision not null,
        ln_value double precision not null,
        n int not null,
        min_ms double precision not null,
        max_ms double precision not null,
        basis text not null,
        data_version bigint not null,
        updated_at timestamptz not null default now(),
        primary key (user_id, day, metric)
      )`.execute(db)

      await sql`create table ${t('sleep_daily')} (
        user_id text not null,
        day date not null,
        total_sleep_min double precision not null,
        in_bed_min double precision not null,
        deep_min double precision not null,
        rem_min double precision not null,
        core_min double precision not null,
        asleep_unspecified_min double precision not null,
        awake_min double precision not null,
        nap_min double precision not null,
        efficiency double precision not null,
        episode_start timestamptz not null,
        episode_end timestamptz not null,
        sleep_onset timestamptz not null,
        wake_time timestamptz not null,
        valid boolean not null,
        data_version bigint not null,
        updated_at timestamptz not null default now(),
        primary key (user_id, day)
      )`.execute(db)

      const baseline = sql`
        hrv_metric text not null,
        hrv_baseline_sdnn double precision not null,
        hrv_ln_mean double precision not null,
        hrv_ln_sd double precision not null,
        hrv_days int not null,
        sleep_baseline_hours double precision not null,
        sleep_sd_hours double precision not null,
        sleep_days int not null,
        baseline_source text not null,
        data_quality_score double precision not null,
        data_version bigint not null,
        updated_at timestamptz not null default now()`

      await sql`create table ${t('baseline_history')} (
        user_id text not null,
        day date not null,
        ${baseline},
        primary key (user_id, day)
      )`.execute(db)

      await sql`create table ${t('user_baselines')} (
        user_id text primary key,
        as_of_day date not null,
        ${baseline},
        created_at timestamptz not null default now(),
        last_incremental_update timestamptz,
        last_full_update timestamptz
      )`.execute(db)

      await sql`create table ${t('user_cpt_tables')} (
        user_id text primary key,
        as_of_day date not null,
        sleep_good_threshold double precision not null,
        sleep_medium_threshold double precision not null,
        hrv_good_threshold double precision not null,
        hrv_medium_threshold double precision not null,
        cpt_probabilities jsonb not null,
        created_at timestamptz not null default now(),
        data_version bigint not null,
        updated_at timestamptz not null default now()
      )`.execute(db)

      await sql`create table ${t('readiness_daily')} (
        user_id text not null,
        day date not null,
        score int not null,
        label text not null,
        p_high double precision not null,
        p_medium double precision not null,
        p_low double precision not null,
        sleep_state text,
        hrv_state text,
        data_version bigint not null,
        updated_at timestamptz not null default now(),
        primary key (user_id, day)
      )`.execute(db)

      await sql`create table ${t('projection_checkpoints')} (
        projection text primary key,
        stream text not null,
        last_seq bigint not null,
        updated_at timestamptz not null default now()
      )`.execute(db)

      await sql`grant select on all tables in schema ${sql.id(schema)} to ${sql.id(role)}`.execute(db)
    },
  }
}
