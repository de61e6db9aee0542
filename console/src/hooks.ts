import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads with `load` when `deps` change, and again every `intervalMs` when given (live
 * views); an answer that arrives after a newer request started is dropped.
 */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[], intervalMs?: number): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const run = useCallback(() => {
    const mine = ++generation.current;
    setLoading(true);
    loadRef.current().then(
      value => {
        if (mine !== generation.current) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (failure: unknown) => {
        if (mine !== generation.current) return;
        setError(describeError(failure));
        setLoading(false);
      },
    );
  }, []);

  useEffect(() => {
    run();
    if (intervalMs === undefined) return undefined;
    const timer = setInterval(run, intervalMs);
    return () => clearInterval(timer);
  }, [...deps, intervalMs]);

  return { data, error, loading, reload: run };
}
