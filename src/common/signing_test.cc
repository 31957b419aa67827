#include "common/signing.h"

#include <gtest/gtest.h>

namespace artel {
namespace {

TEST(Signing, SignatureVerifiesWithItsKeyOnly) {
  absl::StatusOr<SigningKeyPair> a = GenerateSigningKey();
  absl::StatusOr<SigningKeyPair> b = GenerateSigningKey();
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string message = AppSigningMessage("square", "1", std::string(64, 'a'));
  absl::StatusOr<std::string> sig = Sign(a->private_pem, message);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(Verify(a->public_pem, message, *sig).ok());
  EXPECT_EQ(Verify(b->public_pem, message, *sig).code(), absl::StatusCode::kPermissionDenied);
}

TEST(Signing, AnyChangeOfNameVersionOrDigestBreaksTheSignature) {
  absl::StatusOr<SigningKeyPair> k = GenerateSigningKey();
  ASSERT_TRUE(k.ok());
  const std::string digest(64, 'a');
  const std::string sig = *Sign(k->private_pem, AppSigningMessage("square", "1", digest));
  EXPECT_FALSE(Verify(k->public_pem, AppSigningMessage("square", "2", digest), sig).ok());
  EXPECT_FALSE(Verify(k->public_pem, AppSigningMessage("cube", "1", digest), sig).ok());
  EXPECT_FALSE(
      Verify(k->public_pem, AppSigningMessage("square", "1", std::string(64, 'b')), sig).ok());
  std::string flipped = sig;
  flipped[0] ^= 1;
  EXPECT_FALSE(Verify(k->public_pem, AppSigningMessage("square", "1", digest), flipped).ok());
  EXPECT_FALSE(Verify(k->public_pem, AppSigningMessage("square", "1", digest), "").ok());
}

TEST(Signing, MalformedKeysAreRefusedWithWhatToUse) {
  absl::StatusOr<SigningKeyPair> k = GenerateSigningKey();
  ASSERT_TRUE(k.ok());
  absl::Status s = Verify("not a key", "m", std::string(64, 'x'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(".pub"), std::string::npos) << s;
  // A private key where a public one belongs, and the other way round.
  EXPECT_EQ(Verify(k->private_pem, "m", std::string(64, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Sign(k->public_pem, "m").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Signing, PublicKeyAndFingerprintDeriveFromThePrivateKey) {
  absl::StatusOr<SigningKeyPair> k = GenerateSigningKey();
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*PublicKeyOf(k->private_pem), k->public_pem);
  absl::StatusOr<std::string> fp = KeyFingerprint(k->public_pem);
  ASSERT_TRUE(fp.ok());
  EXPECT_EQ(fp->size(), 16u);
  EXPECT_NE(*fp, *KeyFingerprint(GenerateSigningKey()->public_pem));
}

}  // namespace
}  // namespace artel
