// The change feed of the local Cosmos DB server, in LatestVersion mode ("Incremental
// feed"), which @vercel/cosmosdb-server does not serve: its GET on a container's docs
// ignores A-IM and lists every item, and its response code answers any A-IM request
// that has an If-None-Match with 304 and the ETag "1" (for the SDK's pkranges reads,
// which stay as shipped).
//
// Verified against azure-cosmos 4.17.1 (aio) by logging the requests of
// ContainerProxy.query_items_change_feed(...) with start_time="Beginning", "Now", a
// datetime, continuation=<token>, max_item_count=N, partition_key=... and feed_range=...:
// each is a GET /dbs/{db}/colls/{coll}/docs with
// - A-IM: Incremental feed ("Full-Fidelity Feed" is AllVersionsAndDeletes: refused, 400);
// - x-ms-documentdb-partitionkeyrangeid: the range's id (this server has one range, "0";
//   another id is a range that split: 410 with sub-status 1002, as Cosmos DB answers);
// - If-None-Match: "*" for start_time="Now", else the ETag of the last response for its
//   range (the SDK's base64 continuation holds it), absent from the beginning;
// - If-Modified-Since (an HTTP date) for a start time, sent with every later request too;
// - x-ms-max-item-count when max_item_count is given (absent: 100 here, Cosmos DB's
//   default page size);
// - for partition_key=..., also x-ms-read-key-type: EffectivePartitionKeyRange with
//   x-ms-start-epk / x-ms-end-epk: the key's hash (V2 hash partitioning, MurmurHash3
//   below, checked against the EPK the SDK sent for a string key).
// The answer, as Cosmos DB documents it: 200 with {"Documents": [...], "_count": n}, each
// changed item once in its latest version with its _lsn, in _lsn order, and an ETag (the
// continuation) that is the _lsn of the page's last item; 304 when nothing changed since
// the continuation, with the container's current LSN as the ETag. Deletes leave the feed
// (LatestVersion mode has none). Every create, replace, upsert, patch or batch write of
// an item takes the container's next LSN (Cosmos DB keeps one per partition key range).
"use strict";

const lib = "@vercel/cosmosdb-server/lib/";
const Items = require(`${lib}account/items`).default;
const Documents = require(`${lib}account/documents`).default;
const readDocuments = require(`${lib}handler/read-documents`);

const INCREMENTAL_FEED = "incremental feed";
const DEFAULT_PAGE = 100;
const PARTITION_KEY_RANGE_GONE = "1002";

// Every write of an item goes through Items._set (create, and replace, which deletes the
// old version first); a document's LSN is kept beside it, keyed by its _rid, so that no
// other response changes.
Documents.prototype._set = function setWithLsn(data) {
  this._lsn = (this._lsn || 0) + 1;
  if (!this._lsns) this._lsns = new Map();
  this._lsns.set(data._rid, this._lsn);
  return Items.prototype._set.call(this, data);
};
Documents.prototype.delete = function deleteWithLsn(idOrRid, partition) {
  const data = this._item("/id", idOrRid, partition).read();
  Items.prototype.delete.call(this, idOrRid, partition);
  if (data && this._lsns) this._lsns.delete(data._rid);
};

function fail(res, status, message, subStatus) {
  res.statusCode = status;
  if (subStatus) res.setHeader("x-ms-substatus", subStatus);
  return { code: status === 400 ? "BadRequest" : "Gone", message };
}

const quoted = lsn => `"${lsn}"`;

function changeFeed(account, req, res, { dbId, collId }) {
  const { headers } = req;
  // The shipped response code would turn this answer into 304 with the ETag "1".
  delete req.headers["a-im"];
  const collection = account.database(dbId).collection(collId);
  const documents = collection.documents;
  const range = headers["x-ms-documentdb-partitionkeyrangeid"];
  if (range !== undefined && range !== "0") {
    return fail(res, 410, `partition key range ${range} is gone`, PARTITION_KEY_RANGE_GONE);
  }
  let inRange = () => true;
  if (headers["x-ms-read-key-type"] === "EffectivePartitionKeyRange") {
    const properties = collection.read();
    const key = properties.partitionKey || {};
    if ((key.kind || "Hash") !== "Hash" || key.version !== 2 || (key.paths || []).length !== 1) {
      return fail(res, 400, "only V2 hash partition keys of one path are served");
    }
    const path = key.paths[0].slice(1).split("/");
    const [min, max] = [headers["x-ms-start-epk"] || "", headers["x-ms-end-epk"] || "FF"];
    inRange = doc => {
      const epk = effectivePartitionKey(path.reduce((value, name) => value?.[name], doc));
      return min <= epk && epk < max;
    };
  }
  const latest = documents._lsn || 0;
  const match = headers["if-none-match"];
  let after = 0;
  if (match === "*") after = latest;
  else if (match !== undefined) {
    after = Number(String(match).replace(/"/g, ""));
    if (!Number.isInteger(after) || after < 0) return fail(res, 400, `bad If-None-Match ${match}`);
  }
  const modifiedSince = headers["if-modified-since"];
  const since = modifiedSince === undefined ? null : Date.parse(modifiedSince) / 1000;
  if (Number.isNaN(since)) return fail(res, 400, `bad If-Modified-Since ${modifiedSince}`);
  const asked = Number.parseInt(headers["x-ms-max-item-count"], 10);
  const page = asked > 0 ? asked : DEFAULT_PAGE;

  const lsns = documents._lsns || new Map();
  const changed = [...documents._data.values()]
    .map(item => item.read())
    .map(doc => ({ ...doc, _lsn: lsns.get(doc._rid) }))
    .filter(doc => doc._lsn > after && (since === null || doc._ts >= since) && inRange(doc))
    .sort((a, b) => a._lsn - b._lsn)
    .slice(0, page);
  if (changed.length === 0) {
    res.statusCode = 304;
    res.setHeader("etag", quoted(Math.max(after, latest)));
    return {};
  }
  res.setHeader("etag", quoted(changed[changed.length - 1]._lsn));
  res.setHeader("x-ms-item-count", String(changed.length));
  return { Documents: changed, _count: changed.length };
}

const readDocumentsAsShipped = readDocuments.default;
readDocuments.default = (account, req, res, params) => {
  const mode = req.headers["a-im"];
  if (mode === undefined) return readDocumentsAsShipped(account, req, res, params);
  if (String(mode).toLowerCase() !== INCREMENTAL_FEED) {
    delete req.headers["a-im"];
    return fail(res, 400, `change feed mode ${mode} is not served (LatestVersion only)`);
  }
  return changeFeed(account, req, res, params);
};

// The effective partition key of a one-path V2 hash key: the SDK's
// _get_effective_partition_key_for_hash_partitioning_v2 (component bytes, MurmurHash3
// x64 128 with seed 0, bytes reversed, the top two bits cleared), as upper-case hex.
function effectivePartitionKey(value) {
  let bytes;
  if (value === true) bytes = Buffer.from([0x03]);
  else if (value === false) bytes = Buffer.from([0x02]);
  else if (value === null) bytes = Buffer.from([0x01]);
  else if (value === undefined) bytes = Buffer.from([0x00]);
  else if (typeof value === "number") {
    bytes = Buffer.alloc(9);
    bytes[0] = 0x05;
    bytes.writeDoubleLE(value, 1);
  } else bytes = Buffer.concat([Buffer.from([0x08]), Buffer.from(String(value)), Buffer.from([0xff])]);
  const [low, high] = murmur3x64128(bytes);
  const out = Buffer.alloc(16);
  out.writeBigUInt64LE(low, 0);
  out.writeBigUInt64LE(high, 8);
  out.reverse();
  out[0] &= 0x3f;
  return out.toString("hex").toUpperCase();
}

const M64 = (1n << 64n) - 1n;
const rotl = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64;
const fmix = k => {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & M64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & M64;
  return k ^ (k >> 33n);
};

function murmur3x64128(bytes) {
  const c1 = 0x87c37b91114253d5n;
  const c2 = 0x4cf5ad432745937fn;
  let h1 = 0n;
  let h2 = 0n;
  const mixK1 = k => (rotl((k * c1) & M64, 31) * c2) & M64;
  const mixK2 = k => (rotl((k * c2) & M64, 33) * c1) & M64;
  const blocks = bytes.length - (bytes.length % 16);
  for (let i = 0; i < blocks; i += 16) {
    h1 ^= mixK1(bytes.readBigUInt64LE(i));
    h1 = (((rotl(h1, 27) + h2) & M64) * 5n + 0x52dce729n) & M64;
    h2 ^= mixK2(bytes.readBigUInt64LE(i + 8));
    h2 = (((rotl(h2, 31) + h1) & M64) * 5n + 0x38495ab5n) & M64;
  }
  let k1 = 0n;
  let k2 = 0n;
  for (let i = bytes.length - 1; i >= blocks; i -= 1) {
    const shift = BigInt(8 * ((i - blocks) % 8));
    if (i - blocks >= 8) k2 ^= BigInt(bytes[i]) << shift;
    else k1 ^= BigInt(bytes[i]) << shift;
  }
  h2 ^= mixK2(k2);
  h1 ^= mixK1(k1);
  const length = BigInt(bytes.length);
  h1 ^= length;
  h2 ^= length;
  h1 = (h1 + h2) & M64;
  h2 = (h2 + h1) & M64;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h1 = (h1 + h2) & M64;
  h2 = (h2 + h1) & M64;
  return [h1, h2];
}

module.exports = { effectivePartitionKey };
