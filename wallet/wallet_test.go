package wallet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func testKey(t testing.TB, b byte) PrivateKey {
	t.Helper()
	k, err := KeyFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBech32Vectors(t *testing.T) {
	// Valid strings from BIP-173.
	for _, s := range []string{
		"A12UEL5L",
		"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	} {
		if _, _, err := bech32Decode(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "A1G7SGD8", "abcdef1Qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"} {
		if _, _, err := bech32Decode(s); err == nil {
			t.Errorf("%s: decoded, want error", s)
		}
	}
}

func TestAddressRoundTrip(t *testing.T) {
	a := testKey(t, 1).Address()
	s := a.String()
	if !strings.HasPrefix(s, "bo1") {
		t.Fatalf("address %s lacks bo1 prefix", s)
	}
	got, err := ParseAddress(s)
	if err != nil || got != a {
		t.Fatalf("ParseAddress(%s) = %v, %v", s, got, err)
	}
	if _, err := ParseAddress(strings.ToUpper(s)); err != nil {
		t.Fatalf("upper case must parse: %v", err)
	}
	// One changed character breaks the checksum.
	bad := []byte(s)
	bad[len(bad)-1] ^= 1
	if _, err := ParseAddress(string(bad)); err == nil {
		t.Fatal("corrupted address parsed")
	}
	other, _ := bech32Encode("cosmos", a[:])
	if _, err := ParseAddress(other); err == nil {
		t.Fatal("foreign prefix parsed")
	}
	j, _ := json.Marshal(struct{ A Address }{a})
	if !strings.Contains(string(j), s) {
		t.Fatalf("json %s does not show bech32", j)
	}
}

func TestSignatureDomainSeparation(t *testing.T) {
	k := testKey(t, 2)
	msg := []byte("transfer 10 to bob")
	sig := k.Sign("bourse-1", "tx", msg)
	if !Verify(k.Public(), "bourse-1", "tx", msg, sig) {
		t.Fatal("valid signature refused")
	}
	cases := []struct {
		name, chain, typ string
		msg              []byte
		pub              PublicKey
	}{
		{"other chain", "bourse-2", "tx", msg, k.Public()},
		{"other type", "bourse-1", "vote", msg, k.Public()},
		{"other payload", "bourse-1", "tx", []byte("transfer 11 to bob"), k.Public()},
		{"other key", "bourse-1", "tx", msg, testKey(t, 3).Public()},
		// Moving bytes between the parts must not produce the same message.
		{"shifted boundary", "bourse-1t", "x", msg, k.Public()},
	}
	for _, c := range cases {
		if Verify(c.pub, c.chain, c.typ, c.msg, sig) {
			t.Errorf("%s: signature accepted", c.name)
		}
	}
	if Verify(k.Public(), "bourse-1", "tx", msg, sig[:10]) {
		t.Error("short signature accepted")
	}
}

func TestPrivateKeyNeverPrints(t *testing.T) {
	k := testKey(t, 4)
	seedHex := fmt.Sprintf("%x", k.seed())
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, seedHex) || strings.Contains(s, seedHex[:16]) {
			t.Fatalf("key material printed: %s", s)
		}
	}
	if _, err := json.Marshal(struct{ K PrivateKey }{k}); !errors.Is(err, ErrSecret) {
		t.Fatalf("json.Marshal of a private key: err=%v", err)
	}
}

func newKS(t *testing.T) *Keystore {
	return &Keystore{Dir: t.TempDir(), Scrypt: LightScrypt}
}

func TestKeystoreRoundTrip(t *testing.T) {
	ks := newKS(t)
	info, err := ks.Create("alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(info.Path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, err %v", st.Mode(), err)
	}
	k, err := ks.Unlock("alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if k.Address() != info.Address {
		t.Fatal("unlocked key has another address")
	}
	if byAddr, err := ks.Unlock(info.Address.String(), "correct horse"); err != nil || byAddr.Address() != info.Address {
		t.Fatalf("unlock by address: %v", err)
	}
	raw, _ := os.ReadFile(info.Path)
	if bytes.Contains(raw, []byte(fmt.Sprintf("%x", k.seed()))) {
		t.Fatal("seed stored in clear")
	}
	if _, err := ks.Create("alice", "x"); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	list, err := ks.List()
	if err != nil || len(list) != 1 || list[0].Name != "alice" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if _, err := ks.Unlock("alice", "wrong"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := ks.Unlock("bob", "x"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestKeystoreRejectsTampering(t *testing.T) {
	edits := map[string]func(f *keyFile){
		"ciphertext bit": func(f *keyFile) { f.Ciphertext = flipHex(f.Ciphertext) },
		"nonce":          func(f *keyFile) { f.Cipher.Nonce = flipHex(f.Cipher.Nonce) },
		"salt":           func(f *keyFile) { f.KDF.Salt = flipHex(f.KDF.Salt) },
		"kdf cost":       func(f *keyFile) { f.KDF.N = 1 << 11 },
		"name":           func(f *keyFile) { f.Name = "mallory" },
		"public key swap": func(f *keyFile) {
			k9, _ := KeyFromSeed(bytes.Repeat([]byte{9}, 32))
			pub := k9.Public()
			f.PublicKey = fmt.Sprintf("%x", pub[:])
			f.Address = pub.Address().String()
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			ks := newKS(t)
			info, err := ks.Create("k", "pw")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(info.Path)
			var f keyFile
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatal(err)
			}
			edit(&f)
			out, _ := json.Marshal(f)
			if err := os.WriteFile(info.Path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ks.Unlock("k", "pw"); err == nil {
				t.Fatal("tampered key file unlocked")
			}
		})
	}
}

func flipHex(s string) string {
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

func FuzzParseAddress(f *testing.F) {
	f.Add(testKey(f, 1).Address().String())
	f.Add("bo1qqqqqq")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(a.String(), s) {
			t.Fatalf("%q parsed to %s", s, a)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k := testKey(b, 5)
	msg := make([]byte, 200)
	for b.Loop() {
		k.Sign("bourse-1", "tx", msg)
	}
}

func BenchmarkVerify(b *testing.B) {
	k := testKey(b, 5)
	msg := make([]byte, 200)
	sig := k.Sign("bourse-1", "tx", msg)
	pub := k.Public()
	for b.Loop() {
		if !Verify(pub, "bourse-1", "tx", msg, sig) {
			b.Fatal("verify failed")
		}
	}
}
