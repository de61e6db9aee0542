import { AppShell, Burger, Button, Group, Menu, NavLink, Text, Title } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { useState } from 'react';
import { Navigate, NavLink as RouterLink, Route, Routes, useLocation } from 'react-router';
import { userRoleToJSON } from '@jobstream/proto/admin';
import { enumLabel } from './format.js';
import { ChangePasswordModal } from './pages/ChangePassword.js';
import { DashboardPage } from './pages/Dashboard.js';
import { GroupsPage } from './pages/Groups.js';
import { JobsPage } from './pages/Jobs.js';
import { LogDetailPage } from './pages/LogDetail.js';
import { LogsPage } from './pages/Logs.js';
import { UsersPage } from './pages/Users.js';
import { useSession } from './session.js';

export function App() {
  const session = useSession();
  const [navOpen, nav] = useDisclosure(false);
  const [changingPassword, setChangingPassword] = useState(false);
  const location = useLocation();
  const links = [
    ...(session.isAdmin ? [{ to: '/', label: 'Dashboard' }] : []),
    { to: '/jobs', label: 'Jobs' },
    { to: '/logs', label: 'Logs' },
    { to: '/groups', label: 'Executors & groups' },
    ...(session.isAdmin ? [{ to: '/users', label: 'Users & API tokens' }] : []),
  ];
  const active = (to: string) => (to === '/' ? location.pathname === '/' : location.pathname.startsWith(to));

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !navOpen } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={navOpen} onClick={nav.toggle} hiddenFrom="sm" size="sm" aria-label="Menu" />
            <Title order={3}>jobstream</Title>
          </Group>
          <Menu position="bottom-end">
            <Menu.Target>
              <Button variant="subtle" aria-label="Account">
                {session.me.name}
                <Text span c="dimmed" size="xs" ml={6} visibleFrom="xs">
                  {enumLabel(userRoleToJSON(session.me.role), 'USER_ROLE_').toLowerCase()}
                </Text>
              </Button>
            </Menu.Target>
            <Menu.Dropdown>
              {session.me.user && (
                <Menu.Item onClick={() => setChangingPassword(true)}>Change password</Menu.Item>
              )}
              <Menu.Item onClick={() => void session.logout()}>Log out</Menu.Item>
            </Menu.Dropdown>
          </Menu>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Pages">
        {links.map(link => (
          <NavLink
            key={link.to}
            component={RouterLink}
            to={link.to}
            label={link.label}
            active={active(link.to)}
            onClick={nav.close}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <Routes>
          <Route path="/" element={session.isAdmin ? <DashboardPage /> : <Navigate to="/jobs" replace />} />
          <Route path="/jobs" element={<JobsPage />} />
          <Route path="/logs" element={<LogsPage />} />
          <Route path="/logs/:id" element={<LogDetailPage />} />
          <Route path="/groups" element={<GroupsPage />} />
          <Route path="/users" element={session.isAdmin ? <UsersPage /> : <Navigate to="/jobs" replace />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </AppShell.Main>
      <ChangePasswordModal opened={changingPassword} onClose={() => setChangingPassword(false)} />
    </AppShell>
  );
}
