// vc.mjs: ztmesh credentials through did-jwt-vc, the most used JavaScript
// VC-JWT library, with key-did-resolver. The Go tests in this directory run
// it; by hand:
//
//   node vc.mjs issue SEED_HEX SUBJECT_DID CLAIMS_JSON NBF EXP JTI   prints a VC-JWT
//   node vc.mjs verify JWT                                          prints what it verified, as JSON
//
// SEED_HEX is the issuer's 32-byte Ed25519 seed (ztmesh's identity seed);
// its did:key is derived here as did-jwt does it. NBF and EXP are Unix
// seconds. The credential is written the way did-jwt-vc writes any
// credential: issuer, id and subject id only in iss, jti and sub (VC Data
// Model 1.1 section 6.3.1), no kid in the header.
import { ed25519 } from '@noble/curves/ed25519'
import { EdDSASigner, bytesToMultibase, hexToBytes } from 'did-jwt'
import { createVerifiableCredentialJwt, verifyCredential } from 'did-jwt-vc'
import { Resolver } from 'did-resolver'
import { getResolver } from 'key-did-resolver'

const [cmd, ...args] = process.argv.slice(2)

async function issue([seedHex, subject, claimsJSON, nbf, exp, jti]) {
  const seed = hexToBytes(seedHex)
  const did = 'did:key:' + bytesToMultibase(ed25519.getPublicKey(seed), 'base58btc', 'ed25519-pub')
  const payload = {
    sub: subject,
    nbf: Number(nbf),
    exp: Number(exp),
    jti,
    vc: {
      '@context': ['https://www.w3.org/2018/credentials/v1'],
      type: ['VerifiableCredential', 'ZtmeshNodeCredential'],
      credentialSubject: JSON.parse(claimsJSON),
    },
  }
  const jwt = await createVerifiableCredentialJwt(payload, { did, signer: EdDSASigner(seed), alg: 'EdDSA' })
  process.stdout.write(jwt + '\n')
}

async function verify([jwt]) {
  const resolver = new Resolver(getResolver())
  const v = await verifyCredential(jwt.trim(), resolver)
  const vc = v.verifiableCredential
  process.stdout.write(JSON.stringify({
    issuer: vc.issuer.id,
    id: vc.id,
    subject: vc.credentialSubject.id,
    types: vc.type,
    claims: vc.credentialSubject,
    expirationDate: vc.expirationDate,
  }) + '\n')
}

const cmds = { issue, verify }
if (!cmds[cmd]) {
  process.stderr.write('usage: node vc.mjs issue SEED_HEX SUBJECT CLAIMS_JSON NBF EXP JTI | verify JWT\n')
  process.exit(2)
}
cmds[cmd](args).catch((err) => {
  process.stderr.write(`vc.mjs ${cmd}: ${err.message}\n`)
  process.exit(1)
})
