// Validates an OpenAPI description with @apidevtools/swagger-parser (the pinned standard
// validator: OpenAPI 3 schema, $refs resolved, operation and parameter rules). Prints
// "valid <title> <version>" or the validator's error; exits 1 when invalid.
// Usage: node validate_openapi.mjs FILE
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate_openapi.mjs FILE");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`valid ${api.info.title} ${api.info.version} (OpenAPI ${api.openapi})`);
} catch (err) {
  console.error(`invalid: ${err.message}`);
  process.exit(1);
}
