// Runs the official Wix JavaScript SDK, unchanged, against the emulator's Catalog V3 site and
// checks its answers. Called by test_v3_sdk.py: node v3_sdk_check.mjs <sdk dir> <emulator url>
// <api key> <site id>. Prints one JSON line per check and exits 1 if any failed.
import { createRequire } from "node:module";
import path from "node:path";

const [sdkDir, emulatorUrl, apiKey, siteId] = process.argv.slice(2);
const require = createRequire(path.join(sdkDir, "package.json"));
const { createClient, ApiKeyStrategy } = require("@wix/sdk");
const items = require("@wix/auto_sdk_stores_inventory-items-v-3");
const versioning = require("@wix/auto_sdk_stores_catalog-versioning");

const WIX = "https://www.wixapis.com";
const sent = [];
const rewrite = (input, init) => {
  const url = typeof input === "string" ? input : input.url;
  const local = url.startsWith(WIX) ? emulatorUrl + url.slice(WIX.length) : url;
  sent.push(`${(init && init.method) || (input && input.method) || "GET"} ${new URL(local).pathname}`);
  return typeof input === "string" ? fetch(local, init) : fetch(new Request(local, input), init);
};
const client = createClient({
  auth: ApiKeyStrategy({ apiKey, siteId }),
  modules: { items, versioning },
  fetch: rewrite,
});

let failed = 0;
function check(name, ok, detail) {
  if (!ok) failed += 1;
  console.log(JSON.stringify({ check: name, ok: Boolean(ok), detail }));
}
async function refused(promise) {
  try {
    await promise;
    return null;
  } catch (err) {
    const details = err.details || {};
    const app = details.applicationError || {};
    return { status: err.response?.status ?? err.status, code: app.code, message: String(err.message) };
  }
}
const MISSING = "11111111-1111-1111-1111-111111111111";

async function main() {
  const version = await client.versioning.getCatalogVersion();
  check("getCatalogVersion", version.catalogVersion === "V3_CATALOG", version);

  const first = await client.items
    .queryInventoryItems()
    .eq("trackQuantity", true)
    .gt("quantity", 10)
    .ascending("_createdDate")
    .limit(5)
    .find();
  const page1 = first.items;
  const sortedByCreated = page1.every((it, i) => i === 0 || page1[i - 1]._createdDate <= it._createdDate);
  check("queryInventoryItems(builder)", page1.length === 5 && page1.every((it) => it.quantity > 10) && sortedByCreated,
    page1.map((it) => [it._id, it.quantity]));
  check("queryInventoryItems hasNext", first.hasNext() === true, first.cursors);
  const second = await first.next();
  const seen = new Set(page1.map((it) => it._id));
  check("queryInventoryItems(next page)",
    second.items.length > 0 && second.items.every((it) => !seen.has(it._id) && it.quantity > 10),
    second.items.map((it) => it._id));

  const target = page1[0];
  const got = await client.items.getInventoryItem(target._id);
  check("getInventoryItem", got._id === target._id && got.quantity === target.quantity && got.revision === target.revision,
    { id: got._id, revision: got.revision, quantity: got.quantity });

  const dec = await client.items.bulkDecrementInventoryItems(
    [{ inventoryItemId: target._id, decrementBy: 2 }, { inventoryItemId: MISSING, decrementBy: 1, preorderRequest: false }],
    { restrictInventory: true, returnEntity: true, reason: "ORDER" },
  );
  const [ok0, bad1] = dec.results;
  check("bulkDecrementInventoryItems",
    ok0.itemMetadata.success === true && ok0.item.quantity === target.quantity - 2 &&
    bad1.itemMetadata.success === false && bad1.itemMetadata.error.code === "NOT_FOUND" &&
    bad1.itemMetadata.originalIndex === 1 &&
    dec.bulkActionMetadata.totalSuccesses === 1 && dec.bulkActionMetadata.totalFailures === 1, dec);

  const inc = await client.items.bulkIncrementInventoryItems(
    [{ inventoryItemId: target._id, incrementBy: 3 }], { returnEntity: false, reason: "MANUAL" });
  check("bulkIncrementInventoryItems", inc.results[0].itemMetadata.success === true && !inc.results[0].item, inc);

  const place = { variantId: target.variantId, locationId: target.locationId };
  const decLoc = await client.items.bulkDecrementInventoryItemsByVariantAndLocation(
    [{ ...place, decrementBy: 1 }], { restrictInventory: true, returnEntity: true });
  check("bulkDecrementInventoryItemsByVariantAndLocation",
    decLoc.results[0].itemMetadata.success === true && decLoc.results[0].item.quantity === target.quantity, decLoc);
  const incLoc = await client.items.bulkIncrementInventoryItemsByVariantAndLocation(
    [{ ...place, incrementBy: 1 }], { returnEntity: true });
  check("bulkIncrementInventoryItemsByVariantAndLocation",
    incLoc.results[0].itemMetadata.success === true && incLoc.results[0].item.quantity === target.quantity + 1, incLoc);

  const now = await client.items.getInventoryItem(target._id);
  const updated = await client.items.updateInventoryItem(target._id, { revision: now.revision, quantity: 10 }, { reason: "MANUAL" });
  check("updateInventoryItem", updated.quantity === 10 && Number(updated.revision) === Number(now.revision) + 1,
    { revision: updated.revision, quantity: updated.quantity });
  const stale = await refused(client.items.updateInventoryItem(target._id, { revision: now.revision, quantity: 7 }));
  check("updateInventoryItem(stale revision)", stale !== null && stale.code === "REVISION_MISMATCH", stale);

  const other = page1[1];
  const bulk = await client.items.bulkUpdateInventoryItems(
    [{ inventoryItem: { _id: target._id, revision: updated.revision, quantity: 11 } },
      { inventoryItem: { _id: other._id, revision: "999", inStock: false } }],
    { returnEntity: true });
  check("bulkUpdateInventoryItems",
    bulk.results[0].itemMetadata.success === true && bulk.results[0].item.quantity === 11 &&
    bulk.results[1].itemMetadata.success === false && bulk.results[1].itemMetadata.error.code === "REVISION_MISMATCH",
    bulk);

  const found = await client.items.searchInventoryItems({
    filter: { quantity: { $lt: 5 }, trackQuantity: true },
    sort: [{ fieldName: "updatedDate", order: "ASC" }],
    cursorPaging: { limit: 3 },
  });
  const low = found.inventoryItems;
  check("searchInventoryItems", low.length === 3 && low.every((it) => it.quantity < 5) && found.pagingMetadata.hasNext === true,
    low.map((it) => [it._id, it.quantity]));
  const more = await client.items.searchInventoryItems({ cursorPaging: { limit: 3, cursor: found.pagingMetadata.cursors.next } });
  const lowIds = new Set(low.map((it) => it._id));
  check("searchInventoryItems(cursor)", more.inventoryItems.length > 0 &&
    more.inventoryItems.every((it) => it.quantity < 5 && !lowIds.has(it._id)), more.inventoryItems.map((it) => it._id));

  const job = await client.items.bulkUpdateInventoryItemsByFilter({ productId: other.productId }, { inventoryItem: { inStock: false } });
  const after = await client.items.getInventoryItem(other._id);
  check("bulkUpdateInventoryItemsByFilter", typeof job.jobId === "string" && after.inStock === false && after.trackQuantity === false,
    { job, inStock: after.inStock });

  const all = await client.items.queryInventoryItems().limit(1000).find();
  const variantIds = all.items.slice(0, 120).map((it) => it.variantId);
  const before = sent.length;
  const wide = await client.items.queryInventoryItems().in("variantId", variantIds).limit(1000).find();
  const wanted = new Set(variantIds);
  check("queryInventoryItems(long filter -> POST)",
    sent[before].startsWith("POST ") && wide.items.length >= 120 && wide.items.every((it) => wanted.has(it.variantId)),
    { request: sent[before], count: wide.items.length });

  await client.items.deleteInventoryItem(target._id);
  const gone = await refused(client.items.getInventoryItem(target._id));
  check("deleteInventoryItem", gone !== null && gone.code === "NOT_FOUND", gone);
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (err) => {
    console.log(JSON.stringify({ check: "crash", ok: false, detail: String(err && err.stack || err) }));
    process.exit(1);
  },
);
