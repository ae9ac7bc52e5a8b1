// Mints a playback JWT (EdDSA / Ed25519) with Node's built-in crypto: an implementation
// independent of the server's, so the end-to-end tests check Sigma against the JWT format,
// not against itself.
//   node e2e/jwt.mjs --key PEMFILE --kid KID --sub SUB --aud v|p --exp UNIX [--nbf UNIX]
// PEMFILE is the PKCS#8 private key `POST /v1/signing-keys` returned. Prints the compact JWT.
// (--aud is copied as given, so a test can also mint a token for a wrong audience.)
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined;
};
const usage = 'usage: jwt.mjs --key PEMFILE --kid KID --sub SUB --aud v|p --exp UNIX [--nbf UNIX]';
const [keyFile, kid, sub, aud, exp] = ['--key', '--kid', '--sub', '--aud', '--exp'].map(opt);
if ([keyFile, kid, sub, aud, exp].some((v) => v === undefined)) {
  console.error(usage);
  process.exit(2);
}
const nbf = opt('--nbf');
const number = (name, v) => {
  const n = Number(v);
  if (!Number.isInteger(n)) { console.error(`${name} must be an integer: ${v}`); process.exit(2); }
  return n;
};

const b64url = (data) => Buffer.from(data).toString('base64url');
const header = { alg: 'EdDSA', typ: 'JWT', kid };
const claims = { sub, aud, exp: number('--exp', exp) };
if (nbf !== undefined) claims.nbf = number('--nbf', nbf);
const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
const key = createPrivateKey(readFileSync(keyFile, 'utf8'));
if (key.asymmetricKeyType !== 'ed25519') {
  console.error(`${keyFile} is a ${key.asymmetricKeyType} key, not Ed25519`);
  process.exit(2);
}
// Ed25519 takes no digest: the algorithm argument is null.
const signature = sign(null, Buffer.from(input), key);
console.log(`${input}.${b64url(signature)}`);
