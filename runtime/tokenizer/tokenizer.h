// Text <-> token ids for the models Tessera runs.
//
// Two model families, loaded from a GGUF file's tokenizer.ggml.* metadata or from a
// Hugging Face folder (tokenizer.json + tokenizer_config.json):
//   * kByteLevelBpe: GPT-2 style byte-level BPE (Llama 3, Qwen2/3, SmolLM, GPT-2, ...):
//     pre-tokenizer regexes (PCRE2), bytes mapped to printable code points, merges by rank.
//   * kSentencePieceBpe: SentencePiece-style BPE (Llama 2, Phi-3, Gemma): spaces become
//     "▁", merges by score (GGUF "llama") or by rank (tokenizer.json BPE, GGUF "gemma4"),
//     characters outside the vocab fall back to <0xNN> byte tokens, else <unk>.
// Anything else (WordPiece, Unigram, unknown pre-tokenizers, ...) is refused at load time
// with a Status that names the file and the unsupported feature.
//
// Encoding matches Hugging Face tokenizers (and llama.cpp) id for id on the test vectors
// in tests/tokenizer. Special handling of added tokens:
//   * "special" tokens (GGUF token_type CONTROL, tokenizer.json added_tokens with
//     special=true) are recognised in the text only with EncodeOptions::parse_special;
//   * other added tokens (GGUF USER_DEFINED, added_tokens with special=false) are always
//     recognised, as in Hugging Face and llama.cpp.
// Matching is longest-first, honouring lstrip/rstrip from tokenizer.json.
//
// Input text may be any bytes: invalid UTF-8 never crashes, it is tokenized byte-wise.
// Decode returns the exact bytes the tokens stand for (possibly invalid UTF-8);
// IncrementalDecoder returns only well-formed UTF-8 for streaming to a user.
//
// Thread-safety: a Tokenizer is immutable after loading; all const methods may be called
// concurrently. An IncrementalDecoder is single-threaded and borrows its Tokenizer, which
// must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/model/gguf.h"

namespace tessera::tokenizer {

struct TokenizerData;  // tokenizer_data.h: the loaded tables

enum class Kind { kByteLevelBpe, kSentencePieceBpe };

struct EncodeOptions {
  // Add the BOS/EOS tokens the model's metadata asks for (add_bos_token, tokenizer.json
  // post_processor, tokenizer_config.json add_bos_token/add_eos_token).
  bool add_special = true;
  // Recognise special tokens ("<|im_start|>", "<s>") written in the text.
  bool parse_special = false;
  // With parse_special: when non-empty, a special token is recognised only where it lies
  // wholly inside one of these [begin, end) byte ranges of the text (sorted, disjoint) —
  // the parts a chat template wrote itself. Elsewhere it is ordinary text.
  std::span<const std::pair<size_t, size_t>> special_ranges = {};
};

class Tokenizer {
 public:
  // From tokenizer.ggml.* metadata (model "gpt2", "llama" or "gemma4").
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);
  // From `dir`/tokenizer.json, plus `dir`/tokenizer_config.json when present (BOS/EOS,
  // add_bos_token/add_eos_token, chat_template).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfDir(const std::string& dir);
  // As FromHfDir, from the bytes of tokenizer.json and of tokenizer_config.json (nullopt:
  // no such file); errors name the files as if they were in `dir`. The entry point a
  // fuzzer drives.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfJson(
      const std::string& tokenizer_json, std::optional<absl::string_view> tokenizer_config,
      const std::string& dir);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  Kind kind() const;
  int32_t vocab_size() const;

  // Fails only when a pre-tokenizer regex hits a PCRE2 resource limit or normalisation
  // fails (ResourceExhausted / Internal): the text is refused rather than split or
  // normalised differently from the reference tokenizer.
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              const EncodeOptions& opts) const;

  // The raw bytes token `id` stands for: byte-level decoded, "▁" -> " ", <0xNN> -> byte;
  // special and added tokens as their text. "" for an id out of range.
  std::string TokenBytes(int32_t id) const;
  // The vocabulary string as stored ("Ġhello", "▁hello", "<0x0A>"); "" if out of range.
  absl::string_view TokenText(int32_t id) const;
  // Control tokens and tokenizer.json added tokens marked special.
  bool IsSpecial(int32_t id) const;

  // Concatenated TokenBytes, dropping special tokens when `skip_special`. For
  // SentencePiece vocabularies that add a leading "▁", the one leading space of the output
  // is removed, as Hugging Face's decoder does.
  std::string Decode(std::span<const int32_t> ids, bool skip_special) const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // End of a chat turn: <|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>, ... when present.
  std::optional<int32_t> eot_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> unk_id() const;
  bool add_bos() const;
  bool add_eos() const;
  // Raw Jinja text from the metadata; may be empty.
  const std::string& chat_template() const;
  // "llama-bpe", "qwen2", "gpt-2", "smollm", ... for GGUF; "hf:Split+ByteLevel" style for
  // tokenizer.json; "spm" for SentencePiece GGUFs.
  absl::string_view pre_tokenizer_name() const;

  // Internal: loaders build a TokenizerData and hand it over.
  explicit Tokenizer(std::unique_ptr<const TokenizerData> data);
  const TokenizerData& data() const { return *d_; }

 private:
  absl::Status EncodeSegment(absl::string_view text, bool at_text_start,
                             std::vector<int32_t>& out) const;
  void EncodePiece(absl::string_view piece, std::vector<int32_t>& out) const;

  // Immutable after construction.
  std::unique_ptr<const TokenizerData> d_;
};

// Streaming detokenizer. Push returns only complete, well-formed UTF-8: a multi-byte
// character split across tokens is held back until its last byte arrives; ill-formed
// bytes become U+FFFD. Flush returns what is left (an incomplete tail becomes U+FFFD)
// and resets the decoder for a new stream.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special = true);
  std::string Push(int32_t id);
  std::string Flush();

 private:
  const Tokenizer& tok_;
  const bool skip_special_;
  std::string pending_;   // bytes not yet returned (an incomplete UTF-8 tail)
  bool at_start_ = true;  // nothing emitted yet: the SentencePiece leading space rule
};

enum class ChatFormat { kChatML, kLlama3, kGemma };

struct ChatMessage {
  std::string role, content;
};

// The built-in format the vocabulary's special tokens point to (ChatML: <|im_start|> and
// <|im_end|>; Llama 3: <|start_header_id|> and <|eot_id|>; Gemma: <start_of_turn> and
// <end_of_turn>), for files without a chat template; nullopt when none matches.
std::optional<ChatFormat> DetectChatFormat(const Tokenizer& tok);

// Renders `messages`. ChatML: "<|im_start|>{role}\n{content}<|im_end|>\n" per message,
// preceded by a system message with `default_system` when that is non-empty and the first
// message is not a system one; generation prompt "<|im_start|>assistant\n". Llama 3:
// "<|begin_of_text|>" then "<|start_header_id|>{role}<|end_header_id|>\n\n{content}
// <|eot_id|>" per message, content trimmed of surrounding whitespace as Meta's template
// does; generation prompt "<|start_header_id|>assistant<|end_header_id|>\n\n".
// `template_ranges` are the byte ranges of the markers the template wrote itself; roles
// and contents are outside them.
struct RenderedChat {
  std::string text;
  std::vector<std::pair<size_t, size_t>> template_ranges;  // [begin, end), sorted
};
RenderedChat RenderChat(ChatFormat format, std::span<const ChatMessage> messages,
                        bool add_generation_prompt, absl::string_view default_system = {});
// RenderChat's text alone.
std::string ApplyChatTemplate(ChatFormat format, std::span<const ChatMessage> messages,
                              bool add_generation_prompt, absl::string_view default_system = {});

// The model's own chat template (chat_template()) rendered by Tessera's Jinja interpreter
// (jinja.h) as transformers renders it, with `messages` (role, content), `bos_token` and
// `eos_token` (the vocabulary's text for them) and `add_generation_prompt`.
// template_ranges: every byte that did not come from a message's role or content.
// INVALID_ARGUMENT "chat template line N: ..." when the template does not parse, does
// not render (an undefined variable's attribute, a type error) or raises.
absl::StatusOr<RenderedChat> RenderModelTemplate(const Tokenizer& tok,
                                                 std::span<const ChatMessage> messages,
                                                 bool add_generation_prompt);

// How Tessera formats this model's conversations: its own template ("jinja"), else, for a
// file without one, a built-in format picked by the vocabulary's special tokens
// ("chatml", "llama3", "gemma"), else none ("").
std::string ChatTemplateKind(const Tokenizer& tok);

struct ChatEncodeOptions {
  bool add_generation_prompt = true;
  std::string default_system = {};  // a system message for conversations without one
  // Trusted callers only: read special tokens typed in roles and contents too. Off, a
  // user's "<|im_start|>system" is ordinary text and cannot forge a turn.
  bool parse_special_in_content = false;
};

// Renders and encodes a conversation: the template's markers become control tokens, and
// every role and content is encoded with special-token parsing off (unless trusted).
absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tok, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatEncodeOptions& opts);

}  // namespace tessera::tokenizer
