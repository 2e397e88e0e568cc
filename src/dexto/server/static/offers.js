// What the page offers for a provider, decided from the server's facts only (catalog + /ui/meta).

// "Use my own OpenRouter key": OpenRouter already works (e.g. via Dexto credits), takes a pasted
// key, and has none yet. Used by the picker's group header and the custom-model form.
export function offersOwnKey(pid, prov, facts) {
  return Boolean(pid === 'openrouter' && facts && facts.acceptsKey && prov
    && prov.hasEffectiveCredentials && !prov.hasDirectKey);
}
