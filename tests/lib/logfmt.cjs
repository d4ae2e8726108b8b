// SPDX-License-Identifier: Apache-2.0
//
// tests/lib/logfmt.cjs: is every line of a log logfmt, the way Loki and
// Vector parse it? key=value pairs separated by one space; a key starts with a
// letter or '_'; a value is bare (no space, '=', '"' or control byte) or
// double-quoted with \" \\ \/ \b \f \n \r \t \uXXXX escapes only.
//
// Used by the CLI tests (node tests/lib/logfmt.cjs FILE...: prints each line
// that does not parse, exits 1 if any does or a file is empty) and by the e2e
// suite (require: badLines(text) returns the lines that do not parse).
'use strict';

const fs = require('fs');

const PAIR = /^[A-Za-z_][A-Za-z0-9_.]*=(?:[^ "=\x00-\x1f\x7f]*|"(?:[^"\\\x00-\x1f\x7f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")(?= |$)/;

function lineOk(line) {
	let rest = line;
	if (rest.length === 0)
		return false;
	while (rest.length > 0) {
		const m = PAIR.exec(rest);
		if (!m)
			return false;
		rest = rest.slice(m[0].length);
		if (rest.startsWith(' ')) {
			rest = rest.slice(1);
			if (rest === '')
				return false;
		}
	}
	return true;
}

function badLines(text) {
	const lines = text.split('\n');
	if (lines[lines.length - 1] === '')
		lines.pop();
	return lines.filter((l) => !lineOk(l));
}

module.exports = { lineOk, badLines };

if (require.main === module) {
	let bad = 0;
	for (const f of process.argv.slice(2)) {
		const text = fs.readFileSync(f, 'utf8');
		if (text.length === 0) {
			console.error(`logfmt: ${f} is empty`);
			bad++;
		}
		for (const l of badLines(text)) {
			console.error(`    not logfmt: ${l}`);
			bad++;
		}
	}
	process.exit(bad ? 1 : 0);
}
