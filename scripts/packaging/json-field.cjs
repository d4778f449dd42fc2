// Prints one field of the JSON object on standard input.
// Usage: echo '{"a":1}' | node json-field.cjs a
'use strict';
const value = JSON.parse(require('node:fs').readFileSync(0, 'utf8'))[process.argv[2]];
if (value === undefined) process.exit(1);
console.log(value);
