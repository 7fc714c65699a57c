// Package wallet holds Bourse's keys and signatures.
//
//   - Keys are ed25519. A PrivateKey never prints itself, never marshals to
//     JSON or text, and is written to disk only inside an encrypted keystore
//     file (scrypt KDF + XChaCha20-Poly1305; the KDF parameters live in the
//     file, and the whole file header is authenticated).
//   - An Address is the first 20 bytes of sha256(public key), shown as
//     bech32 with the human-readable prefix "bo" (bo1...).
//   - Every signature is domain separated: what is signed is
//     "bourse-sig/v1" ‖ chain id ‖ message type ‖ payload, each part length
//     prefixed, so a signature made for one chain or one purpose can never be
//     replayed as another.
//
// May import: the standard library and golang.org/x/crypto only.
package wallet
