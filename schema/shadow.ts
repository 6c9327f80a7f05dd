import type pg from 'pg'
import { TransientError } from '../errors.ts'
import { identifier, pgCode } from './db.ts'
import { monthOfPartition, partitionSql } from './partitions.ts'

// Zero-downtime rebuilds (docs/operating.md §4): a projection is rebuilt into shadow tables `<table>__rebuild`
// while the live tables keep serving readers and the live writer, then swapped in by one transaction.
// The shadow gets the live table's columns, defaults, checks, constraints and indexes under
// `…__rebuild` names; the swap drops the live table and renames the shadow, its constraints, indexes
// and partitions to the live names, so nothing downstream (grants, migrations, the partition cache)
// can tell a rebuilt table from a migrated one.

export const SHADOW_SUFFIX = '__rebuild'

export const shadowName = (table: string) => identifier(`${table}${SHADOW_SUFFIX}`)

/**
 * (Re)creates an empty shadow of `table`: columns and defaults, constraints, partitions. Returns the
 * statements of its other indexes — and, with `deferKeys`, of its primary key and unique constraints —
 * to be run once the bulk of the rows is in: a bulk load is faster without them, and one index build
 * is faster than a million index inserts. (Without its keys the load must remove duplicates itself.)
 */
export async function createShadow(client: pg.ClientBase, schema: string, table: string, opts: { deferKeys?: boolean } = {}): Promise<string[]> {
  const s = identifier(schema)
  const live = identifier(table)
  const shadow = shadowName(table)
  await client.query(`drop table if exists "${s}".${shadow} cascade`)
  const timescale = (await client.query(`select 1 from pg_extension where extname = 'timescaledb'`)).rowCount !== 0
  const {
    rows: [kind],
  } = await client.query<{ relkind: string; hypertable: boolean }>(
    timescale
      ? `select c.relkind, exists (select 1 from timescaledb_information.hypertables h where h.hypertable_schema = $1 and h.hypertable_name = $2) as hypertable
           from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`
      : `select c.relkind, false as hypertable from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`,
    [s, live],
  )
  if (!kind) throw new Error(`no table ${s}.${live}: run \`hph migrate\` first`)
  const partitioned = kind.relkind === 'p'
  const partitionKey = partitioned ? (await client.query<{ key: string }>(`select pg_get_partkeydef($1::regclass) as key`, [`"${s}".${live}`])).rows[0]?.key : undefined
  await client.query(
    `create table "${s}".${shadow} (like "${s}".${live} including defaults including generated including identity including storage including comments)${partitionKey ? ` partition by ${partitionKey}` : ''}`,
  )
  if (kind.hypertable) {
    await client.query(`select create_hypertable('${s}.${shadow}', 'start_ts')`)
  }
  // constraints (primary keys, uniques, checks) and then the indexes that are not a constraint's
  const constraints = await client.query<{ name: string; def: string }>(
    `select conname as name, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = $1::regclass and contype in ('p', 'u', 'c', 'x') order by conname`,
    [`"${s}".${live}`],
  )
  const deferred: string[] = []
  for (const c of constraints.rows) {
    const text = `alter table "${s}".${shadow} add constraint ${identifier(`${c.name}${SHADOW_SUFFIX}`)} ${c.def}`
    if (opts.deferKeys && /^(PRIMARY KEY|UNIQUE)/.test(c.def)) deferred.push(text)
    else await client.query(text)
  }
  const indexes = await client.query<{ name: string; def: string }>(
    `select i.relname as name, pg_get_indexdef(x.indexrelid) as def
       from pg_index x join pg_class i on i.oid = x.indexrelid
      where x.indrelid = $1::regclass and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)
      order by i.relname`,
    [`"${s}".${live}`],
  )
  if (partitioned) {
    // the live table's months, so the live writer's partition cache stays true after the swap
    for (const bound of await partitionBounds(client, s, live)) await client.query(partitionSql(s, bound, shadow))
  }
  return deferred.concat(
    indexes.rows.map((ix) => {
      // CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING …: the same index, on the shadow, under the shadow name
      const def = ix.def.replace(
        /^(CREATE (?:UNIQUE )?INDEX )(\S+)( ON )(?:ONLY )?(\S+)/,
        (_m, head: string, _name: string, on: string) => `${head}${identifier(`${ix.name}${SHADOW_SUFFIX}`)}${on}"${s}".${shadow}`,
      )
      if (def === ix.def) throw new Error(`cannot read the definition of index ${ix.name}: ${ix.def}`)
      return def
    }),
  )
}

/** The months (UTC month starts) of the monthly partitions of `table`, from their names. */
async function partitionBounds(client: pg.ClientBase, schema: string, table: string): Promise<Date[]> {
  const r = await client.query<{ name: string }>(`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = $1::regclass`, [
    `"${schema}".${table}`,
  ])
  return r.rows.map((x) => monthOfPartition(x.name)).filter((m): m is Date => m !== undefined)
}

interface DependentView {
  name: string
  materialized: boolean
  def: string
  acl: string[] | null
  comment: string | null
  /** the comments of its columns, by column name */
  columnComments: Record<string, string> | null
}

/** Views (and materialized views) built on `tables`, directly or through other views, in creation order. */
async function dependentViews(client: pg.ClientBase, schema: string, tables: readonly string[]): Promise<DependentView[]> {
  const r = await client.query<DependentView>(
    `with recursive deps(oid) as (
       select r.ev_class from pg_depend d join pg_rewrite r on r.oid = d.objid
        where d.classid = 'pg_rewrite'::regclass and d.refobjid = any($1::regclass[]) and r.ev_class <> d.refobjid
       union
       select r.ev_class from pg_depend d join pg_rewrite r on r.oid = d.objid join deps on d.refobjid = deps.oid
        where d.classid = 'pg_rewrite'::regclass and r.ev_class <> d.refobjid)
     select format('%I.%I', n.nspname, c.relname) as name, c.relkind = 'm' as materialized, pg_get_viewdef(c.oid) as def,
            c.relacl::text[] as acl, obj_description(c.oid, 'pg_class') as comment,
            (select json_object_agg(a.attname, col_description(c.oid, a.attnum)) from pg_attribute a
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and col_description(c.oid, a.attnum) is not null) as "columnComments"
       from (select distinct oid from deps) x join pg_class c on c.oid = x.oid join pg_namespace n on n.oid = c.relnamespace
      order by c.oid`,
    [tables.map((t) => `"${schema}".${t}`)],
  )
  return r.rows
}

const PRIVILEGES: Record<string, string> = { r: 'select', a: 'insert', w: 'update', d: 'delete', D: 'truncate', x: 'references', t: 'trigger' }

/** Creates a view again as it was: definition, comments (its own and its columns'), and the grants its ACL held (`grantee=privileges/grantor`). */
async function recreateView(client: pg.ClientBase, v: DependentView): Promise<void> {
  await client.query(`create ${v.materialized ? 'materialized view' : 'view'} ${v.name} as ${v.def}`)
  if (v.comment !== null) await client.query(`comment on ${v.materialized ? 'materialized view' : 'view'} ${v.name} is ${quoteLiteral(v.comment)}`)
  for (const [column, text] of Object.entries(v.columnComments ?? {})) {
    await client.query(`comment on column ${v.name}.${quoteIdent(column)} is ${quoteLiteral(text)}`)
  }
  for (const item of v.acl ?? []) {
    const m = /^("?)(.*)\1=([a-zA-Z*]*)\/.*$/.exec(item)
    if (!m) continue
    const grantee = m[2] ? `"${(m[2] ?? '').replaceAll('"', '""')}"` : 'public'
    const privileges = [...(m[3] ?? '').replaceAll('*', '')].map((c) => PRIVILEGES[c]).filter(Boolean)
    if (privileges.length) await client.query(`grant ${privileges.join(', ')} on ${v.name} to ${grantee}`)
  }
}

const quoteLiteral = (text: string) => `'${text.replaceAll("'", "''")}'`
const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`

/**
 * Inside the swap transaction, with the live tables locked: gives the shadow every month the live table
 * gained meanwhile, drops each live table and renames its shadow (and the shadow's constraints, indexes
 * and partitions) to the live names. Views built on the live tables (an analyst's, the documented ones)
 * are dropped with them and created again on the new tables, with their grants.
 */
export async function swapShadows(client: pg.ClientBase, schema: string, tables: readonly string[]): Promise<void> {
  const s = identifier(schema)
  const views = await dependentViews(client, s, tables)
  for (const table of tables) {
    const shadow = shadowName(table)
    const rel = await client.query<{ relkind: string }>(`select relkind from pg_class where oid = $1::regclass`, [`"${s}".${table}`])
    if (rel.rows[0]?.relkind === 'p') {
      for (const bound of await partitionBounds(client, s, table)) await client.query(partitionSql(s, bound, shadow))
    }
    await client.query(`drop table "${s}".${identifier(table)} cascade`)
    await client.query(`alter table "${s}".${shadow} rename to ${identifier(table)}`)
    const owned = await client.query<{ name: string; kind: 'constraint' | 'index' | 'partition' }>(
      `select conname as name, 'constraint' as kind from pg_constraint where conrelid = $1::regclass and conname like '%' || $2
       union all
       select i.relname, 'index' from pg_index x join pg_class i on i.oid = x.indexrelid
        where x.indrelid = $1::regclass and i.relname like '%' || $2 and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)
       union all
       select c.relname, 'partition' from pg_inherits h join pg_class c on c.oid = h.inhrelid where h.inhparent = $1::regclass`,
      [`"${s}".${table}`, SHADOW_SUFFIX],
    )
    for (const o of owned.rows) {
      if (o.kind === 'constraint')
        await client.query(`alter table "${s}".${identifier(table)} rename constraint ${identifier(o.name)} to ${identifier(o.name.slice(0, -SHADOW_SUFFIX.length))}`)
      else if (o.kind === 'index') await client.query(`alter index "${s}".${identifier(o.name)} rename to ${identifier(o.name.slice(0, -SHADOW_SUFFIX.length))}`)
      else if (o.name.startsWith(shadow)) await client.query(`alter table "${s}".${identifier(o.name)} rename to ${identifier(table + o.name.slice(shadow.length))}`)
    }
  }
  for (const v of views) await recreateView(client, v)
}

/** Removes the shadows of an abandoned rebuild. */
export async function dropShadows(client: pg.ClientBase, schema: string, tables: readonly string[]): Promise<void> {
  for (const table of tables) await client.query(`drop table if exists "${identifier(schema)}".${shadowName(table)} cascade`)
}

/**
 * A write that met a table in the middle of a swap (undefined table, a month not yet in the new table)
 * is retried, never dead-lettered: the message is fine, the table is about to be.
 */
export function asSwapError(err: unknown): unknown {
  const code = pgCode(err)
  return code === '42P01' || code === '23514' ? new TransientError(`table changed under the write (${code}): ${(err as Error).message}`, err) : err
}
