// Publish a Catentio webhook event from Node.js, in the producer's own transaction.
//
//   npm install pg
//   DATABASE_URL=postgres://app@db/app node publish-from-node.mjs ws_1 run.succeeded '{"runId":"r_1"}'
//
// The event is written by the SQL function catentio_webhooks.publish() inside the same
// BEGIN ... COMMIT as the application's own writes: if the transaction commits, the
// webhook is delivered; if it rolls back (try --rollback), it never existed.
// CATENTIO_DB_SCHEMA names the schema when it is not the default one.
import pg from "pg";

const [workspaceId, type, data = "{}", ...flags] = process.argv.slice(2);
if (!workspaceId || !type) {
  console.error("usage: publish-from-node.mjs WORKSPACE_ID TYPE [JSON_DATA] [--rollback]");
  process.exit(2);
}

const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
const schema = client.escapeIdentifier(process.env.CATENTIO_DB_SCHEMA || "catentio_webhooks");
await client.connect();
try {
  await client.query("BEGIN");
  // ... the application's own writes go here, on the same client ...
  const { rows } = await client.query(
    `SELECT ${schema}.publish($1, $2, $3::jsonb) AS event_id`,
    [workspaceId, type, data],
  );
  if (flags.includes("--rollback")) {
    await client.query("ROLLBACK");
    console.log(JSON.stringify({ eventId: rows[0].event_id, committed: false }));
  } else {
    await client.query("COMMIT");
    console.log(JSON.stringify({ eventId: rows[0].event_id, committed: true }));
  }
} catch (error) {
  await client.query("ROLLBACK").catch(() => {});
  // Bad input carries a documented SQLSTATE: 22W01 bad type, 22W03 data not an object, ...
  console.error(`publish failed: ${error.code} ${error.message}`);
  process.exitCode = 1;
} finally {
  await client.end();
}
