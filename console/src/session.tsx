import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useState,
  type FormEvent,
  type ReactNode,
} from 'react';
import { UserRole, type User } from '@jobstream/proto/admin';
import { api, describeError, fieldErrorOf, isStatus, onSessionExpired, Status } from './api.js';

export interface Me {
  /** Undefined for a static admin token (not a user). */
  user: User | undefined;
  name: string;
  role: UserRole;
}

export interface Session {
  me: Me;
  isAdmin: boolean;
  /** Whether the user may read or change objects of the group (the API's own rule, for hiding actions). */
  may: (groupId: string, access: 'read' | 'write') => boolean;
  /** May change at least one group: shows "new job". */
  mayWriteAny: boolean;
  /** Holds the script permission (granted separately; a static token holds it). */
  mayEditScripts: boolean;
  logout: () => Promise<void>;
}

const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (session === undefined) throw new Error('useSession outside SessionProvider');
  return session;
}

function sessionOf(me: Me, logout: () => Promise<void>): Session {
  const groups = new Set(me.user?.groupIds ?? []);
  const isAdmin = me.role === UserRole.USER_ROLE_ADMIN;
  const operator = me.role === UserRole.USER_ROLE_OPERATOR;
  return {
    me,
    isAdmin,
    may: (groupId, access) => isAdmin || (groups.has(groupId) && (access === 'read' || operator)),
    mayWriteAny: isAdmin || (operator && groups.size > 0),
    mayEditScripts: me.user === undefined || me.user.canEditScripts,
    logout,
  };
}

type State = { kind: 'checking' } | { kind: 'out'; notice?: string } | { kind: 'in'; me: Me };

/** Asks the admin who the cookie belongs to; shows the login page until there is a session. */
export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<State>({ kind: 'checking' });

  const check = useCallback(async (notice?: string) => {
    try {
      const answer = await api.whoAmI({});
      setState({
        kind: 'in',
        me: { user: answer.user, name: answer.user?.username ?? 'static admin token', role: answer.role },
      });
    } catch (error) {
      if (isStatus(error, Status.UNAUTHENTICATED)) setState({ kind: 'out', ...(notice ? { notice } : {}) });
      else setState({ kind: 'out', notice: describeError(error) });
    }
  }, []);

  useEffect(() => {
    void check();
  }, [check]);

  useEffect(
    () =>
      onSessionExpired(() =>
        setState(current =>
          current.kind === 'in'
            ? { kind: 'out', notice: 'Your session has ended (it expired or was revoked). Log in again.' }
            : current,
        ),
      ),
    [],
  );

  const logout = useCallback(async () => {
    try {
      await api.logout({});
    } finally {
      setState({ kind: 'out', notice: 'You are logged out.' });
    }
  }, []);

  if (state.kind === 'checking') return null;
  if (state.kind === 'out') return <LoginPage notice={state.notice} onLoggedIn={() => void check()} />;
  return <SessionContext.Provider value={sessionOf(state.me, logout)}>{children}</SessionContext.Provider>;
}

function LoginPage({ notice, onLoggedIn }: { notice: string | undefined; onLoggedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setFieldErrors({});
    try {
      await api.login({ username, password });
      onLoggedIn();
    } catch (failure) {
      const field = fieldErrorOf(failure);
      if (field) setFieldErrors({ [field.field]: field.message });
      else setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" w={380} maw="100%" component="form" onSubmit={e => void submit(e)}>
        <Stack>
          <Title order={2}>jobstream</Title>
          <Text c="dimmed" size="sm">
            Log in to the operator console.
          </Text>
          {notice && (
            <Alert color="yellow" role="status">
              {notice}
            </Alert>
          )}
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="Username"
            autoComplete="username"
            required
            autoFocus
            value={username}
            onChange={e => setUsername(e.currentTarget.value)}
            error={fieldErrors.username}
          />
          <PasswordInput
            label="Password"
            autoComplete="current-password"
            required
            value={password}
            onChange={e => setPassword(e.currentTarget.value)}
            error={fieldErrors.password}
          />
          <Button type="submit" loading={busy}>
            Log in
          </Button>
        </Stack>
      </Paper>
    </Center>
  );
}
