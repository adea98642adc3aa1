// The DataMapping requests of the Memory API's documentation, sent with the
// official twilio Node SDK to a live convmem. Prints what it saw as JSON.
const twilio = require("twilio");

const { BASE, SID, TOKEN, STORE, DATASET } = process.env;
const client = twilio(SID, TOKEN);
client.memory.baseUrl = BASE;
const v1 = client.memory.v1;

async function finished(statusUrl) {
  const id = statusUrl.split("/").pop();
  for (let i = 0; i < 100; i++) {
    const op = await v1.operations(id).fetch();
    if (op.status === "COMPLETED" || op.status === "FAILED") return op;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`operation ${id} did not finish`);
}

async function main() {
  const created = await v1.dataMappings(STORE).create({
    displayName: "crm-contacts",
    mappingTo: {
      type: "TRAITS",
      mappings: [{ fieldName: "primary_email", traitGroup: "Contact", traitName: "email" }],
    },
    mappingFrom: { type: "DATASET", datasetId: DATASET },
  });
  const op = await finished(created.statusUrl);
  const id = op.result.id;
  const fetched = await v1.dataMappings(STORE, id).fetch();
  const listed = await v1.dataMappings(STORE).list({ orderBy: "DESC", type: "DATASET" });
  const patched = await v1.dataMappings(STORE, id).patch({ displayName: "crm-contacts" });
  const afterPatch = await v1.dataMappings(STORE, id).fetch();
  await v1.dataMappings(STORE, id).remove();
  let goneStatus = null;
  let goneCode = null;
  try {
    await v1.dataMappings(STORE, id).fetch();
  } catch (error) {
    goneStatus = error.status;
    goneCode = error.code;
  }
  console.log(
    JSON.stringify({
      createdMessage: created.message,
      operationStatus: op.status,
      id,
      fetched: {
        displayName: fetched.displayName,
        mappingTo: fetched.mappingTo,
        mappingFrom: fetched.mappingFrom,
        version: fetched.version,
        isEnabled: fetched.isEnabled,
      },
      listed: listed.map((m) => m.id),
      patchedStatusUrl: patched.statusUrl,
      versionAfterPatch: afterPatch.version,
      goneStatus,
      goneCode,
    })
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
